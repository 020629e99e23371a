//! libpq-compatible connection strings: URLs and `key=value` conninfo, completed from the `PG*`
//! environment variables and the password file the way libpq does it.
//!
//! snapcopy needs one resolved description of each server for two consumers: its own
//! tokio-postgres sessions, and the foreign server through which the *target server*
//! reaches the source. No crate parses libpq's formats and applies its defaults, so this module
//! does, following `fe-connect.c`. Passwords are kept apart so that nothing can print them.

mod env;
mod parse;

use std::collections::BTreeMap;
use std::fmt;

pub use env::Env;
use parse::{parse_keyword_value, parse_url};

/// A malformed connection string. The message names the parameter or part and where it starts,
/// never text of the string: in a malformed one, a piece of a password can be anywhere.
#[derive(Debug, thiserror::Error)]
#[error("invalid connection string: {0}")]
pub struct ConnInfoError(String);

/// The keywords libpq accepts, with the environment variable that supplies each default.
/// A keyword outside this list is an error, as in libpq.
const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("sslmode", Some("PGSSLMODE")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslpassword", None),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcrl", Some("PGSSLCRL")),
    ("sslcrldir", Some("PGSSLCRLDIR")),
    ("sslsni", Some("PGSSLSNI")),
    ("requirepeer", Some("PGREQUIREPEER")),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("krbsrvname", Some("PGKRBSRVNAME")),
    ("gsslib", Some("PGGSSLIB")),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
];

/// The socket directory of Debian's libpq, used when neither `host` nor `PGHOST` says otherwise.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Parameters that belong to the role rather than the server: they go into the user mapping.
const ROLE_KEYS: &[&str] = &["user", "password", "sslpassword"];

/// A parsed connection string, before defaults: keyword to value, in libpq's keyword set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    params: BTreeMap<String, String>,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_redacted())
    }
}

impl ConnInfo {
    /// Parses a libpq URL (`postgresql://...`, `postgres://...`) or `key=value` conninfo.
    pub fn parse(s: &str) -> Result<ConnInfo, ConnInfoError> {
        let trimmed = s.trim();
        let params = if trimmed.starts_with("postgresql://") || trimmed.starts_with("postgres://") {
            parse_url(trimmed)?
        } else {
            parse_keyword_value(trimmed)?
        };
        Ok(ConnInfo { params })
    }

    /// The value of one parameter, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// Sets one parameter (used by tests and by `--source-via` overlays).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.params.insert(key.to_string(), value.into());
    }

    /// Every parameter, in keyword order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// This conninfo with `other`'s parameters laid over it (the `--source-via` rule: what the
    /// via string names replaces the source's value, the rest is kept).
    pub fn overlay(&self, other: &ConnInfo) -> ConnInfo {
        let mut params = self.params.clone();
        for (k, v) in &other.params {
            params.insert(k.clone(), v.clone());
        }
        ConnInfo { params }
    }

    /// A `key=value` conninfo with libpq quoting, password included: only for handing to a
    /// server or driver, never for display.
    pub fn to_keyword_value(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={}", quote_conninfo_value(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The conninfo for messages: the password, if any, is replaced by asterisks.
    pub fn display_redacted(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| {
                if k == "password" || k == "sslpassword" {
                    format!("{k}=********")
                } else {
                    format!("{k}={}", quote_conninfo_value(v))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether every host this conninfo may connect to is this machine: a unix socket,
    /// `localhost`, or a loopback address.
    pub fn is_local(&self) -> bool {
        let local = |h: &str| {
            let h = h.trim();
            h.is_empty()
                || h.starts_with('/')
                || h.starts_with('@')
                || h.eq_ignore_ascii_case("localhost")
                || h == "::1"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|a| a.is_loopback())
        };
        let hosts_local = self
            .get("host")
            .unwrap_or(DEFAULT_SOCKET_DIR)
            .split(',')
            .all(local);
        let addrs_local = self.get("hostaddr").is_none_or(|a| a.split(',').all(local));
        hosts_local && addrs_local
    }

    /// A short label for summaries and errors: `user@host:port/dbname`, no password.
    pub fn label(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.get("user").unwrap_or("?"),
            self.get("host").unwrap_or("?"),
            self.get("port").unwrap_or("?"),
            self.get("dbname").unwrap_or("?"),
        )
    }

    /// The options of the link's foreign server: everything but the role's credentials.
    pub fn server_options(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .filter(|(k, _)| !ROLE_KEYS.contains(&k.as_str()) && k.as_str() != "passfile")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The options of the user mapping: the role name and its secrets.
    pub fn user_mapping_options(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .filter(|(k, _)| ROLE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Builds the tokio-postgres configuration for the tool's own session.
    pub fn to_driver_config(&self) -> Result<tokio_postgres::Config, ConnInfoError> {
        use tokio_postgres::config::SslMode;
        let mut config = tokio_postgres::Config::new();
        for host in self.get("host").unwrap_or(DEFAULT_SOCKET_DIR).split(',') {
            if host.starts_with('/') {
                config.host_path(host);
            } else {
                config.host(host);
            }
        }
        if let Some(addrs) = self.get("hostaddr") {
            for a in addrs.split(',') {
                let ip = a
                    .trim()
                    .parse()
                    .map_err(|_| ConnInfoError("hostaddr is not an IP address".into()))?;
                config.hostaddr(ip);
            }
        }
        let port = self.get("port").unwrap_or("5432");
        for p in port.split(',') {
            let p: u16 = p
                .trim()
                .parse()
                .map_err(|_| ConnInfoError("port is not a port number".into()))?;
            config.port(p);
        }
        if let Some(v) = self.get("user") {
            config.user(v);
        }
        if let Some(v) = self.get("password") {
            config.password(v);
        }
        if let Some(v) = self.get("dbname") {
            config.dbname(v);
        }
        if let Some(v) = self.get("options") {
            config.options(v);
        }
        config.application_name(self.get("application_name").unwrap_or("snapcopy"));
        if let Some(v) = self.get("connect_timeout") {
            let secs: u64 = v
                .parse()
                .map_err(|_| ConnInfoError("connect_timeout is not a number of seconds".into()))?;
            if secs > 0 {
                config.connect_timeout(std::time::Duration::from_secs(secs));
            }
        }
        // What the certificate must prove is crate::tls's business; here only whether TLS is
        // off, tried, or insisted on.
        config.ssl_mode(match self.get("sslmode").unwrap_or("prefer") {
            "disable" | "allow" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" | "verify-ca" | "verify-full" => SslMode::Require,
            _ => {
                return Err(ConnInfoError(
                    "sslmode is none of disable, allow, prefer, require, verify-ca and \
                     verify-full"
                        .into(),
                ))
            }
        });
        Ok(config)
    }
}

/// Quotes a conninfo value when it needs it: single quotes, backslash before `'` and `\`.
pub fn quote_conninfo_value(v: &str) -> String {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\' || c == '=');
    if plain {
        v.to_string()
    } else {
        let escaped = v.replace('\\', "\\\\").replace('\'', "\\'");
        format!("'{escaped}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_display_and_debug_hide_the_password() {
        let c = ConnInfo::parse("host=h user=u password=hunter2").unwrap();
        assert!(!c.display_redacted().contains("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.to_keyword_value().contains("password=hunter2"));
    }

    #[test]
    fn splits_server_and_user_mapping_options() {
        let c = ConnInfo::parse("host=h port=1 dbname=d user=u password='p w'").unwrap();
        let server: Vec<_> = c.server_options().into_iter().map(|(k, _)| k).collect();
        assert_eq!(server, ["dbname", "host", "port"]);
        let mapping: Vec<_> = c
            .user_mapping_options()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(mapping, ["password", "user"]);
        assert_eq!(quote_conninfo_value("p w"), "'p w'");
        assert_eq!(quote_conninfo_value(r"a'b\c"), r"'a\'b\\c'");
    }

    #[test]
    fn only_sockets_and_loopback_are_local() {
        for local in [
            "host=/tmp",
            "host=localhost",
            "host=127.0.0.1",
            "host=127.8.0.1",
            "host=::1",
            "",
        ] {
            assert!(ConnInfo::parse(local).unwrap().is_local(), "{local}");
        }
        for remote in [
            "host=db.example.com",
            "host=10.0.0.5",
            "host=/tmp,db.example.com",
            "host=localhost hostaddr=10.1.1.1",
        ] {
            assert!(!ConnInfo::parse(remote).unwrap().is_local(), "{remote}");
        }
    }

    #[test]
    fn via_overlays_the_source() {
        let source = ConnInfo::parse("host=/tmp port=5432 dbname=app user=u password=p").unwrap();
        let via = ConnInfo::parse("host=10.0.0.5").unwrap();
        let link = source.overlay(&via);
        assert_eq!(link.get("host"), Some("10.0.0.5"));
        assert_eq!(link.get("password"), Some("p"));
        assert_eq!(link.get("dbname"), Some("app"));
    }
}
