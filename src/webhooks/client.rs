//! Sending one attempt: an HTTP client that follows no redirects, uses no
//! proxy, speaks TLS through rustls (ring), and resolves names through a
//! resolver that refuses non-public addresses and hands the checked
//! addresses to the connector, so the address connected to is the one that
//! was checked (no second lookup a rebinding DNS server could answer
//! differently).

use super::sign::signature_header;
use crate::domain::webhook::{SigningSecret, UrlRules, WebhookUrl};
use crate::service::resolve_allowed;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most response bytes read (and thrown away) so the connection can be reused.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A refusal by the address guard, found again in the client's error chain.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves with the system resolver, then applies the address rules.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port on every address.
            match resolve_allowed(&host, 0, allow_private).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(why) => Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Why it is not a success (`None`: 2xx).
    pub error: Option<String>,
    /// Time from the start of the attempt to the end of the response.
    pub duration: Duration,
}

/// The delivery client of a node.
pub struct Sender {
    client: reqwest::Client,
    rules: UrlRules,
    timeout: Duration,
}

impl Sender {
    /// A client for these address rules and this per-attempt timeout.
    pub fn new(rules: UrlRules, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .dns_resolver(Arc::new(GuardedResolver { allow_private: rules.allow_private }))
            .user_agent(concat!("livechat-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, rules, timeout })
    }

    /// Posts `body` to `url`, signed for `id` with `secrets`.
    pub async fn send(&self, url: &WebhookUrl, id: &str, body: Vec<u8>, secrets: &[SigningSecret]) -> Sent {
        let started = Instant::now();
        let failed = |error: String| Sent { status: None, error: Some(error), duration: started.elapsed() };
        // The request goes to the URL the guard parsed and checked, so no
        // second parse can read another host out of the same text.
        let target = match url.check(&self.rules) {
            Ok(target) => target,
            Err(why) => return failed(format!("refused: the URL {why}")),
        };
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = signature_header(secrets, id, timestamp, &body);
        let request = self
            .client
            .post(target.into_url())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => return failed(self.describe(&err)),
        };
        let status = response.status();
        // Read a little of the body (within the same timeout) so a kept-alive
        // connection can serve the next attempt; the content is not kept.
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        let error = (!status.is_success()).then(|| {
            if status.is_redirection() {
                format!("HTTP {} (redirects are not followed)", status.as_u16())
            } else {
                format!("HTTP {}", status.as_u16())
            }
        });
        Sent { status: Some(status.as_u16()), error, duration: started.elapsed() }
    }

    /// A short, log-safe reason for a failed request.
    fn describe(&self, err: &reqwest::Error) -> String {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<Refused>() {
                return format!("refused: {refused}");
            }
            source = e.source();
        }
        if err.is_timeout() {
            return format!("timed out after {:?}", self.timeout);
        }
        let mut chain = Vec::new();
        let mut source = std::error::Error::source(err);
        while let Some(e) = source {
            chain.push(e.to_string());
            source = e.source();
        }
        let kind = if err.is_connect() { "connection failed" } else { "request failed" };
        match chain.last() {
            Some(cause) => format!("{kind}: {cause}"),
            None => kind.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::{Host, forbidden_address};
    use std::net::IpAddr;
    use std::str::FromStr;

    /// reqwest's own reading of `raw` without the guard: the host it would
    /// connect to, an address when it is a literal (or a name the connector
    /// would take as one without asking the resolver).
    fn reqwest_host(raw: &str) -> Option<Result<IpAddr, String>> {
        let request = reqwest::Client::new().post(raw).build().ok()?;
        Some(match request.url().host()? {
            url::Host::Ipv4(ip) => Ok(ip.into()),
            url::Host::Ipv6(ip) => Ok(ip.into()),
            url::Host::Domain(name) => name.parse().map_err(|_| name.trim_end_matches('.').to_owned()),
        })
    }

    #[tokio::test]
    async fn the_guard_refuses_every_private_address_the_client_would_connect_to() {
        // Plain http allowed for these hosts, so what refuses is the address rule.
        let hosts = ["127.0.0.1", "10.0.0.1", "::1", "::ffff:127.0.0.1"].map(String::from).to_vec();
        let rules = UrlRules { allow_private: false, http_hosts: hosts };
        let sender = Sender::new(rules.clone(), Duration::from_secs(1)).unwrap();
        for raw in [
            "http://127.1/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://2130706433/",
            "http://127.0.0.1./",
            "http://%31%32%37.0.0.1/",
            "http://１２７.０.０.１/",
            "HTTP://10.1/",
            "http://10.0.0.1\\@hooks.example.com/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "https://0/",
            "https://169.254.169.254/latest/meta-data",
            "https://[fe80::1]/",
        ] {
            let ip = match reqwest_host(raw) {
                Some(Ok(ip)) => ip,
                other => panic!("{raw}: reqwest reads {other:?}, not an address"),
            };
            assert!(forbidden_address(ip).is_some(), "{raw}: {ip} is public");
            let err = WebhookUrl::parse(raw, &rules).unwrap_err();
            assert!(err.contains("SSRF"), "{raw}: {err}");
            // Stored before the rules tightened: refused before any connection.
            let sent = sender.send(&WebhookUrl::from_stored(raw.to_owned()), "id", b"{}".to_vec(), &[]).await;
            let error = sent.error.unwrap_or_default();
            assert!(error.starts_with("refused:") && error.contains("SSRF"), "{raw}: {error}");
        }
    }

    #[test]
    fn the_guard_and_the_client_read_the_same_host_name() {
        for raw in [
            "https://hooks.example.com\\@127.0.0.1/",
            "https://hooks.example.com#@127.0.0.1/",
            "https://HOOKS.example.com./in",
            "https://Bücher.example/",
            "https://hooks%2Eexample.com/",
        ] {
            let Some(Err(name)) = reqwest_host(raw) else { panic!("{raw}: reqwest reads no name") };
            assert_eq!(WebhookUrl::parse(raw, &UrlRules::default()).unwrap().host(), Some(Host::Name(name)), "{raw}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback_unless_allowed() {
        let strict = GuardedResolver { allow_private: false };
        let err = match strict.resolve(Name::from_str("localhost").unwrap()).await {
            Err(err) => err.to_string(),
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
        };
        assert!(err.contains("loopback") && err.contains("SSRF"), "{err}");
        let lenient = GuardedResolver { allow_private: true };
        let addrs: Vec<_> = lenient.resolve(Name::from_str("localhost").unwrap()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn address_literals_are_refused_before_any_connection() {
        let sender =
            Sender::new(UrlRules { allow_private: false, http_hosts: vec!["10.1.2.3".into()] }, Duration::from_secs(1))
                .unwrap();
        let sent =
            sender.send(&WebhookUrl::from_stored("http://10.1.2.3/hook".into()), "id", b"{}".to_vec(), &[]).await;
        let error = sent.error.unwrap();
        assert!(error.starts_with("refused:") && error.contains("private"), "{error}");
        assert_eq!(sent.status, None);
    }
}
