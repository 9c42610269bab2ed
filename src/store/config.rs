//! How to reach the database: [`StoreConfig`], the [`DatabaseUrl`] whose
//! password never prints, and the [`Backend`] its scheme selects.

use std::fmt;
use std::time::Duration;

/// A database URL whose password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL as configured.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included; only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The backend its scheme selects.
    pub fn backend(&self) -> Option<Backend> {
        Backend::from_url(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DatabaseUrl {
    /// `scheme://user:***@host/db`: everything but the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str(&self.0);
        };
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                let masked = if userinfo.contains(':') { ":***" } else { "" };
                write!(f, "{scheme}://{user}{masked}@{host}{path}")
            }
            None => f.write_str(&self.0),
        }
    }
}

/// How to reach the database, parsed from the URL and the pool settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path` or `postgres://…`.
    pub url: DatabaseUrl,
    /// Largest number of pooled connections (readers on SQLite).
    pub max_connections: u32,
    /// How long a request waits for a connection before 503.
    pub acquire_timeout: Duration,
    /// Per-statement limit on PostgreSQL.
    pub statement_timeout: Duration,
    /// Apply pending migrations when connecting.
    pub migrate: bool,
    /// After the database is found unreachable, how long requests fail fast
    /// with 503 before one request probes it again.
    pub retry_interval: Duration,
    /// SQLite: how many of a session's own rows a term search tests before
    /// it uses the trigram index shared by every tenant.
    pub search_window: u32,
}

/// Which backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` / `postgresql:` URLs.
    Postgres,
}

impl Backend {
    /// Picks the backend from the URL scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_never_print_their_password() {
        let url = DatabaseUrl::new("postgres://livechat:hunter2@db.internal:5432/livechat");
        assert_eq!(url.to_string(), "postgres://livechat:***@db.internal:5432/livechat");
        assert_eq!(format!("{url:?}"), "postgres://livechat:***@db.internal:5432/livechat");
        assert_eq!(DatabaseUrl::new("postgres://me@host/db").to_string(), "postgres://me@host/db");
        assert_eq!(DatabaseUrl::new("sqlite://data/livechat.db").to_string(), "sqlite://data/livechat.db");
        assert!(!format!("{:?}", DatabaseUrl::new("postgres://u:p%40ss@h/d")).contains("p%40ss"));
    }
}
