//! Webhook targets and the SSRF rules on them: [`UrlRules`] (what a
//! deployment allows), [`CheckedUrl`] (a target parsed by the `url` crate and
//! checked against the rules), [`WebhookUrl`] (a target as stored and shown)
//! and the [`Host`] a target names.
//!
//! One parser decides: the guard reads the host the `url` crate reads (a
//! domain, an IPv4 or an IPv6 address, after percent-decoding, IDNA mapping
//! and the WHATWG reading of numeric hosts such as `127.1` or `0x7f.0.0.1`),
//! and the delivery client sends to that same parsed [`url::Url`], so no
//! second parser can read the string another way.

use super::address::forbidden_address;
use std::fmt;
use std::net::IpAddr;

/// Which targets are allowed: the SSRF rules of a deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlRules {
    /// Plain http and loopback / private / link-local targets are allowed
    /// (development and tests only).
    pub allow_private: bool,
    /// Hosts that may be reached over plain http (still never a private address
    /// unless `allow_private`).
    pub http_hosts: Vec<String>,
}

/// The host part of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An address literal.
    Ip(IpAddr),
    /// A name to resolve (lowercase ASCII, IDNA applied, no trailing dot).
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// Longest accepted URL, as given and as normalised.
pub const MAX_URL_CHARS: usize = 2_000;

/// A target parsed and checked against the [`UrlRules`] without any network
/// access (the addresses a name resolves to are checked separately, at
/// subscription and again at every delivery). The delivery client sends to
/// [`CheckedUrl::into_url`] itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    url: url::Url,
    host: Host,
}

impl CheckedUrl {
    /// Parses and checks a target URL.
    pub fn parse(raw: &str, rules: &UrlRules) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(format!("must be at most {MAX_URL_CHARS} characters"));
        }
        // The parser would drop tabs and newlines without a word; a target
        // carrying them is refused instead of silently read another way.
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("must not contain spaces or control characters".to_owned());
        }
        let url = url::Url::parse(raw).map_err(|err| match err {
            url::ParseError::RelativeUrlWithoutBase => "must be an absolute http(s) URL".to_owned(),
            url::ParseError::EmptyHost => "must name a host".to_owned(),
            other => format!("is not a valid URL ({other})"),
        })?;
        // Normalising can lengthen it (percent-encoding, punycode): the
        // stored form is held to the same limit, so it parses again.
        if url.as_str().chars().count() > MAX_URL_CHARS {
            return Err(format!("must be at most {MAX_URL_CHARS} characters once normalised"));
        }
        let plain_http = match url.scheme() {
            "https" => false,
            "http" => true,
            _ => return Err("must be an http(s) URL".to_owned()),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials (the signature authenticates the sender)".to_owned());
        }
        let host = host_of(&url).ok_or("must name a host")?;
        if plain_http && !rules.allow_private && !http_allowed(&host, rules) {
            return Err("must use https (plain http is not allowed for this host)".to_owned());
        }
        if !rules.allow_private {
            match &host {
                Host::Ip(ip) => {
                    if let Some(why) = forbidden_address(*ip) {
                        return Err(format!("must not target a {why} address (SSRF protection)"));
                    }
                }
                Host::Name(name) if is_local_name(name) => {
                    return Err("must not target a local host name (SSRF protection)".to_owned());
                }
                Host::Name(_) => {}
            }
        }
        Ok(Self { url, host })
    }

    /// The host, as checked.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The normalised URL text.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The parsed URL, for the client to send to.
    pub fn into_url(self) -> url::Url {
        self.url
    }
}

/// A subscription's target as stored and shown: the text as given (trimmed,
/// scheme in lower case), which a client recognises as its own, once it
/// parsed as a [`CheckedUrl`]. A stored one is parsed and checked again by
/// the same parser, against the rules of the day, before every delivery
/// ([`WebhookUrl::check`]), and the client sends to that parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Parses and checks a target URL; keeps its text.
    pub fn parse(raw: &str, rules: &UrlRules) -> Result<Self, String> {
        let checked = CheckedUrl::parse(raw, rules)?;
        let raw = raw.trim();
        // The scheme is ASCII by the parse above; the rest stays as given.
        let rest = raw.get(checked.url.scheme().len()..).unwrap_or_default();
        Ok(Self(format!("{}{rest}", checked.url.scheme())))
    }

    /// Wraps a stored URL (checked when it was stored).
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is plain http.
    pub fn is_plain_http(&self) -> bool {
        self.0.starts_with("http://")
    }

    /// The host it names, read as [`CheckedUrl`] reads it (`None` if it names none it would accept).
    pub fn host(&self) -> Option<Host> {
        host_of(&url::Url::parse(&self.0).ok()?)
    }

    /// Checks it against `rules` (they may have tightened since it was
    /// stored, and an address literal never reaches the resolver): what a
    /// delivery sends to.
    pub fn check(&self, rules: &UrlRules) -> Result<CheckedUrl, String> {
        CheckedUrl::parse(&self.0, rules)
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host of a parsed URL, if it is one a target may name.
fn host_of(url: &url::Url) -> Option<Host> {
    let name = match url.host()? {
        url::Host::Ipv4(ip) => return Some(Host::Ip(IpAddr::V4(ip))),
        url::Host::Ipv6(ip) => return Some(Host::Ip(IpAddr::V6(ip))),
        // Already percent-decoded, IDNA-mapped and lowercased; a name that
        // ends in a number has been read as an IPv4 address or refused.
        url::Host::Domain(name) => name.trim_end_matches('.'),
    };
    if name.is_empty() {
        return None;
    }
    let valid = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    // A name made only of digits and dots, or starting `0x`, is refused:
    // resolvers read such forms as addresses.
    let numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.') || name.starts_with("0x");
    (valid && !numeric).then(|| Host::Name(name.to_owned()))
}

/// Whether plain http is allowed to this host by the deployment's list.
fn http_allowed(host: &Host, rules: &UrlRules) -> bool {
    let name = host.to_string();
    rules.http_hosts.iter().any(|h| h.trim().trim_end_matches('.').eq_ignore_ascii_case(&name))
}

/// Names that always mean this machine or its network.
fn is_local_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local") || name.ends_with(".internal")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> UrlRules {
        UrlRules::default()
    }

    #[test]
    fn https_urls_to_public_hosts_are_accepted() {
        let url = WebhookUrl::parse("https://hooks.example.com/livechat?x=1", &strict()).unwrap();
        assert_eq!(url.host(), Some(Host::Name("hooks.example.com".into())));
        let url = WebhookUrl::parse("HTTPS://1.1.1.1:8443/in", &strict()).unwrap();
        assert_eq!(url.as_str(), "https://1.1.1.1:8443/in");
        assert_eq!(url.host(), Some(Host::Ip("1.1.1.1".parse().unwrap())));
    }

    #[test]
    fn plain_http_needs_the_allow_list_or_private_mode() {
        assert!(WebhookUrl::parse("http://hooks.example.com/", &strict()).is_err());
        let rules = UrlRules { allow_private: false, http_hosts: vec!["hooks.example.com".into()] };
        assert!(WebhookUrl::parse("http://hooks.example.com:8080/", &rules).is_ok());
        assert!(WebhookUrl::parse("http://other.example.com/", &rules).is_err());
        let dev = UrlRules { allow_private: true, http_hosts: Vec::new() };
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook", &dev).is_ok());
    }

    #[test]
    fn private_loopback_and_link_local_targets_are_refused() {
        for url in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[64:ff9b::a00:1]/",
            "https://localhost/",
            "https://api.localhost/",
            "https://2130706433/",
            "https://0x7f.0.0.1/",
            "https://user:pass@hooks.example.com/",
            "ftp://hooks.example.com/",
            "hooks.example.com/x",
        ] {
            assert!(WebhookUrl::parse(url, &strict()).is_err(), "{url} must be refused");
        }
    }

    /// Plain http allowed for the loopback address, so what refuses is the address rule.
    fn http_to_loopback() -> UrlRules {
        UrlRules { allow_private: false, http_hosts: vec!["127.0.0.1".into()] }
    }

    /// Asserts that each URL is refused for a reason that says `why`.
    fn assert_refused(urls: &[&str], rules: &UrlRules, why: &str) {
        for url in urls {
            match CheckedUrl::parse(url, rules) {
                Ok(checked) => panic!("{url:?} accepted as {}", checked.as_str()),
                Err(err) => assert!(err.contains(why), "{url:?}: {err}"),
            }
        }
    }

    #[test]
    fn numeric_hosts_are_read_as_the_addresses_they_stand_for() {
        for url in [
            "http://127.1/",
            "http://0x7f.0.0.1/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://2130706433/",
            "http://127.0.0.1./",
            "http://%31%32%37.0.0.1/",
            "http://１２７.０.０.１/",
        ] {
            let checked = CheckedUrl::parse(url, &UrlRules { allow_private: true, ..strict() }).unwrap();
            assert_eq!(checked.host(), &Host::Ip("127.0.0.1".parse().unwrap()), "{url}");
            assert_refused(&[url], &http_to_loopback(), "loopback address (SSRF protection)");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_addresses_are_refused() {
        let urls = [
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[0:0:0:0:0:ffff:10.0.0.1]/",
            "https://[::127.0.0.1]/",
            "https://[::]/",
        ];
        assert_refused(&urls, &strict(), "SSRF");
    }

    #[test]
    fn userinfo_is_refused_wherever_the_at_sign_stands() {
        let urls = [
            "https://user@10.0.0.1@example.com/",
            "https://user@hooks.example.com/",
            "https://:pass@hooks.example.com/",
            "https://127.0.0.1:443@hooks.example.com/",
        ];
        assert_refused(&urls, &strict(), "credentials");
    }

    #[test]
    fn a_backslash_or_fragment_cannot_smuggle_another_host() {
        // A backslash ends the authority of an http(s) URL, as a slash does:
        // the host is the name before it, and that name is what is sent to.
        for (url, sent) in [
            ("https://hooks.example.com\\@127.0.0.1/", "https://hooks.example.com/@127.0.0.1/"),
            ("https://hooks.example.com#@127.0.0.1/", "https://hooks.example.com/#@127.0.0.1/"),
            ("https://hooks.example.com?@127.0.0.1/", "https://hooks.example.com/?@127.0.0.1/"),
        ] {
            let checked = WebhookUrl::parse(url, &strict()).unwrap();
            assert_eq!(checked.host(), Some(Host::Name("hooks.example.com".into())), "{url}");
            assert_eq!(checked.check(&strict()).map(CheckedUrl::into_url).map(String::from), Ok(sent.to_owned()));
        }
        assert_refused(&["https://127.0.0.1\\@hooks.example.com/"], &strict(), "loopback");
    }

    #[test]
    fn names_are_read_after_decoding_mapping_and_trailing_dots() {
        let urls = [
            "https://local%68ost/",
            "https://LOCALHOST/",
            "https://localhost./",
            "https://ｌｏｃａｌｈｏｓｔ/",
            "https://api.localhost../",
            "https://db.internal./",
            "https://printer.LOCAL/",
        ];
        assert_refused(&urls, &strict(), "local host name");
        let idn = WebhookUrl::parse("https://Bücher.Example/in", &strict()).unwrap();
        assert_eq!(idn.as_str(), "https://Bücher.Example/in");
        assert_eq!(idn.host(), Some(Host::Name("xn--bcher-kva.example".into())));
        let dotted = WebhookUrl::parse("https://hooks.example.com./", &strict()).unwrap();
        assert_eq!(dotted.host(), Some(Host::Name("hooks.example.com".into())));
    }

    #[test]
    fn malformed_hosts_are_refused() {
        let urls = [
            "https://",
            "https:///",
            "https://a..example.com/",
            "https://a*b.example.com/",
            "https://0x7f.example.com/",
            "https://[fe80::1%25eth0]/",
            "https://%5B::1%5D/",
            "https://1.2.3.4.5/",
            &format!("https://{}.example.com/", "a".repeat(64)),
        ];
        assert_refused(&urls, &strict(), "");
    }

    #[test]
    fn spaces_and_control_characters_are_refused_not_dropped() {
        let urls = ["https://hooks.exa\tmple.com/", "https://hooks.example.com/a\nb", "https://hooks example.com/"];
        assert_refused(&urls, &strict(), "spaces or control");
    }

    #[test]
    fn the_stored_form_is_as_given_and_delivery_sends_to_its_parse() {
        for (raw, stored, sent) in [
            ("HTTPS://Hooks.Example.COM", "https://Hooks.Example.COM", "https://hooks.example.com/"),
            (
                " https://hooks.example.com:443/a/../b ",
                "https://hooks.example.com:443/a/../b",
                "https://hooks.example.com/b",
            ),
            (
                "https://hooks.example.com/ü?q=ü",
                "https://hooks.example.com/ü?q=ü",
                "https://hooks.example.com/%C3%BC?q=%C3%BC",
            ),
        ] {
            let url = WebhookUrl::parse(raw, &strict()).unwrap();
            assert_eq!(url.as_str(), stored);
            assert_eq!(WebhookUrl::parse(url.as_str(), &strict()), Ok(url.clone()));
            assert_eq!(url.check(&strict()).map(CheckedUrl::into_url).map(String::from), Ok(sent.to_owned()));
        }
        // Percent-encoding may lengthen a URL past the limit: refused, not stored too long.
        let long = format!("https://hooks.example.com/{}", "ü".repeat(MAX_URL_CHARS / 2));
        assert!(long.chars().count() <= MAX_URL_CHARS);
        assert!(WebhookUrl::parse(&long, &strict()).is_err());
    }

    #[test]
    fn an_accepted_name_never_reads_as_an_address_literal() {
        // The connector takes a name that parses as an IP address as that
        // address, without asking the resolver (which applies the rules).
        for url in ["https://hooks.example.com./", "https://1.1.1.1.nip.io/", "https://xn--bcher-kva.example/"] {
            match CheckedUrl::parse(url, &strict()).unwrap().host() {
                Host::Name(name) => assert!(name.parse::<IpAddr>().is_err(), "{url}"),
                Host::Ip(ip) => panic!("{url} read as {ip}"),
            }
        }
    }
}
