//! The SSRF guard on addresses: [`forbidden_address`] says why a receiver
//! may not be at an IP address (anything but a public unicast address).

use std::net::{IpAddr, Ipv4Addr};

/// Why a receiver may not be at `ip`, if it may not: everything that is not
/// a public unicast address. A webhook makes the server send requests where
/// a tenant says; without this, a tenant could make it reach the cloud
/// metadata service, the database or an admin port on the private network
/// (server-side request forgery).
pub fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                return Some("loopback");
            }
            if v6.is_unspecified() {
                return Some("unspecified");
            }
            if v6.is_multicast() {
                return Some("multicast");
            }
            let s = v6.segments();
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d):
            // refused whatever the embedded address, so no IPv4 rule can be bypassed.
            if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
                return Some("IPv4-mapped");
            }
            match s[0] {
                0xfc00..=0xfdff => Some("private (unique local)"),
                0xfe80..=0xfebf => Some("link-local"),
                0xfec0..=0xfeff => Some("site-local"),
                // NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16) and Teredo
                // (2001::/32) carry IPv4 addresses inside; documentation 2001:db8::/32.
                0x0064 if s[1] == 0xff9b => Some("NAT64"),
                0x2002 => Some("6to4"),
                0x2001 if s[1] == 0 => Some("Teredo"),
                0x2001 if s[1] == 0x0db8 => Some("documentation"),
                _ => None,
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || a >= 240 {
        Some("reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (CGNAT)")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if ip.is_documentation() {
        Some("documentation")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_public_range_is_named() {
        for (ip, why) in [
            ("127.0.0.2", "loopback"),
            ("10.0.0.1", "private"),
            ("169.254.1.1", "link-local"),
            ("100.127.255.255", "shared (CGNAT)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("fc00::1", "private (unique local)"),
        ] {
            assert_eq!(forbidden_address(ip.parse().unwrap()), Some(why), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"] {
            assert_eq!(forbidden_address(ip.parse().unwrap()), None, "{ip}");
        }
    }
}
