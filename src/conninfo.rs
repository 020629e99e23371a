//! libpq-compatible connection strings: URLs and `key=value` conninfo, completed from the `PG*`
//! environment variables and the password file the way libpq does it.
//!
//! snapcopy needs one resolved description of each server for two consumers: its own
//! tokio-postgres sessions, and the `dblink_fdw` foreign server through which the *target server*
//! reaches the source. No crate parses libpq's formats and applies its defaults, so this module
//! does, following `fe-connect.c`. Passwords are kept apart so that nothing can print them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A malformed connection string. The message names the parameter or part and where it starts,
/// never text of the string: in a malformed one, a piece of a password can be anywhere.
#[derive(Debug, thiserror::Error)]
#[error("invalid connection string: {0}")]
pub struct ConnInfoError(String);

/// Where the process's environment and home directory come from; a trait-free struct so that
/// tests can resolve conninfo without touching the real environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// Environment variables (`PGHOST`, `PGPASSFILE`, ...).
    pub vars: BTreeMap<String, String>,
    /// The home directory, for `~/.pgpass`.
    pub home: Option<PathBuf>,
    /// The operating-system user name, libpq's default for `user`.
    pub os_user: Option<String>,
}

impl Env {
    /// Reads the real process environment.
    pub fn from_process() -> Env {
        let vars = std::env::vars().collect::<BTreeMap<_, _>>();
        let home = vars.get("HOME").map(PathBuf::from);
        let os_user = vars
            .get("USER")
            .or_else(|| vars.get("LOGNAME"))
            .cloned()
            .or_else(current_os_user);
        Env {
            vars,
            home,
            os_user,
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Asks `id -un` for the user name when neither USER nor LOGNAME is set (containers, CI).
fn current_os_user() -> Option<String> {
    let out = std::process::Command::new("id").arg("-un").output().ok()?;
    let name = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!name.is_empty()).then_some(name)
}

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

    /// Fills what is missing the way libpq does: environment variables, built-in defaults, then
    /// the password file. The result names host, port, user and dbname explicitly, so the same
    /// string means the same thing to the target server's backend, whose environment differs.
    pub fn resolve(&self, env: &Env) -> ConnInfo {
        let mut params = self.params.clone();
        for (key, var) in KEYWORDS {
            if params.contains_key(*key) {
                continue;
            }
            if let Some(value) = var.and_then(|v| env.var(v)) {
                params.insert(key.to_string(), value.to_string());
            }
        }
        params
            .entry("host".into())
            .or_insert_with(|| DEFAULT_SOCKET_DIR.into());
        params.entry("port".into()).or_insert_with(|| "5432".into());
        if !params.contains_key("user") {
            if let Some(user) = &env.os_user {
                params.insert("user".into(), user.clone());
            }
        }
        if !params.contains_key("dbname") {
            if let Some(user) = params.get("user").cloned() {
                params.insert("dbname".into(), user);
            }
        }
        let mut resolved = ConnInfo { params };
        if resolved.get("password").is_none() {
            if let Some(password) = resolved.password_from_file(env) {
                resolved.params.insert("password".into(), password);
            }
        }
        resolved
    }

    /// Looks the connection up in the password file (`passfile`, `PGPASSFILE` or `~/.pgpass`),
    /// with libpq's rules: `*` matches anything, a socket connection matches `localhost`, and a
    /// file readable by group or others is ignored.
    fn password_from_file(&self, env: &Env) -> Option<String> {
        let path = match self.get("passfile") {
            Some(p) => PathBuf::from(p),
            None => env.home.as_ref()?.join(".pgpass"),
        };
        if !pgpass_permissions_ok(&path) {
            return None;
        }
        let contents = std::fs::read_to_string(&path).ok()?;
        let host = self.get("host").unwrap_or(DEFAULT_SOCKET_DIR);
        let host = host.split(',').next().unwrap_or(host);
        let host = if host.starts_with('/') || host.starts_with('@') {
            "localhost"
        } else {
            host
        };
        let port = self.get("port").unwrap_or("5432");
        let port = port.split(',').next().unwrap_or(port);
        let dbname = self.get("dbname").unwrap_or("");
        let user = self.get("user").unwrap_or("");
        lookup_pgpass(&contents, [host, port, dbname, user])
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

    /// The options of the `dblink_fdw` foreign server: everything but the role's credentials.
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

/// libpq ignores a password file that group or others can read, and so do we.
fn pgpass_permissions_ok(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(path) {
            Ok(meta) => meta.is_file() && meta.mode() & 0o077 == 0,
            Err(_) => false,
        }
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Finds the first `.pgpass` line matching host, port, dbname and user.
fn lookup_pgpass(contents: &str, wanted: [&str; 4]) -> Option<String> {
    for line in contents.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = wanted
            .iter()
            .zip(&fields)
            .all(|(want, field)| field == "*" || field == want);
        if matches {
            return Some(fields[4..].join(":"));
        }
    }
    None
}

/// Splits a `.pgpass` line on unescaped colons, removing the backslash escapes.
fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().unwrap().push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut().unwrap().push(c),
        }
    }
    fields
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

/// Parses `key = value key='quoted value'` as libpq's `conninfo_parse` does.
fn parse_keyword_value(s: &str) -> Result<BTreeMap<String, String>, ConnInfoError> {
    let mut params = BTreeMap::new();
    let mut chars = s.chars().enumerate().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::iter::Enumerate<std::str::Chars>>| {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
    };
    loop {
        skip_space(&mut chars);
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        skip_space(&mut chars);
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(ConnInfoError(format!(
                "missing \"=\" after {} (write key=value pairs, or a postgresql:// URL)",
                word(&key, start)
            )));
        }
        skip_space(&mut chars);
        let mut value = String::new();
        if chars.peek().map(|(_, c)| *c) == Some('\'') {
            chars.next();
            loop {
                match chars.next().map(|(_, c)| c) {
                    None => {
                        return Err(ConnInfoError(format!(
                            "the quoted value of {} has no closing quote",
                            word(&key, start)
                        )))
                    }
                    Some('\\') => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if !KEYWORDS.iter().any(|(k, _)| *k == key) {
            return Err(unknown_parameter(&key, start));
        }
        params.insert(key, value);
    }
    Ok(params)
}

/// How an error names a word of a connection string: by name when it is one of libpq's
/// keywords, else only by its place (it may be a piece of a password with a space in it).
fn word(key: &str, at: usize) -> String {
    if KEYWORDS.iter().any(|(k, _)| *k == key) {
        format!("\"{key}\"")
    } else {
        format!("the word at character {}", at + 1)
    }
}

/// An unknown parameter, by its place, with the keyword it most resembles (never its own
/// text, which may be a piece of a password).
fn unknown_parameter(key: &str, at: usize) -> ConnInfoError {
    let nearest = KEYWORDS
        .iter()
        .map(|(k, _)| (edit_distance(key, k), *k))
        .min()
        .filter(|(d, _)| *d <= 2);
    ConnInfoError(format!(
        "unknown parameter at character {}{}; libpq's parameters are listed at \
         https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS",
        at + 1,
        nearest
            .map(|(_, k)| format!(" (did you mean \"{k}\"?)"))
            .unwrap_or_default()
    ))
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Parses `postgresql://[user[:password]@][host][:port][,...][/dbname][?key=value&...]`.
/// Errors name the part and the character where it starts, never its text: in a URL whose
/// password holds an unencoded `/`, `?` or `@`, pieces of the password land in the other parts.
fn parse_url(s: &str) -> Result<BTreeMap<String, String>, ConnInfoError> {
    let rest = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
        .expect("caller checked the scheme");
    // Character position of a slice of `s`, for messages.
    let at = |part: &str| {
        s[..part.as_ptr() as usize - s.as_ptr() as usize]
            .chars()
            .count()
            + 1
    };
    let mut params = BTreeMap::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hostspec)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.insert("user".into(), percent_decode(user, "user name", at(user))?);
            }
            if let Some(p) = password {
                params.insert("password".into(), percent_decode(p, "password", at(p))?);
            }
            hostspec
        }
        None => authority,
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for part in hostspec.split(',').filter(|p| !p.is_empty()) {
        let (host, port) = if let Some(inner) = part.strip_prefix('[') {
            let (h, after) = inner.split_once(']').ok_or_else(|| {
                ConnInfoError(format!(
                    "the IPv6 host address at character {} has no closing \"]\"",
                    at(part)
                ))
            })?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match part.split_once(':') {
                Some((h, p)) => (percent_decode(h, "host", at(h))?, Some(p)),
                None => (percent_decode(part, "host", at(part))?, None),
            }
        };
        if let Some(p) = port {
            if p.parse::<u16>().is_err() {
                return Err(ConnInfoError(format!(
                    "the port at character {} is not a port number (a password with / ? @ or : \
                     in it must be percent-encoded: %2F %3F %40 %3A)",
                    at(p)
                )));
            }
        }
        hosts.push(host);
        ports.push(port.unwrap_or_default().to_string());
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        params.insert("host".into(), hosts.join(","));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        params.insert("port".into(), ports.join(","));
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        params.insert(
            "dbname".into(),
            percent_decode(db, "database name", at(db))?,
        );
    }
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ConnInfoError(format!(
                    "the URL parameter at character {} has no \"=\" (a password with / ? @ or : \
                     in it must be percent-encoded: %2F %3F %40 %3A)",
                    at(pair)
                ))
            })?;
            let key = match percent_decode(k, "parameter name", at(k))?.as_str() {
                "ssl" if v == "true" => {
                    params.insert("sslmode".into(), "require".into());
                    continue;
                }
                other => other.to_string(),
            };
            if !KEYWORDS.iter().any(|(known, _)| *known == key) {
                return Err(unknown_parameter(&key, at(k) - 1));
            }
            let value = percent_decode(v, &format!("value of \"{key}\""), at(v))?;
            params.insert(key, value);
        }
    }
    Ok(params)
}

/// Decodes `%XX` escapes in `s`, the part of a URL that `what` names, starting at character
/// `at`; an error says where, never what.
fn percent_decode(s: &str, what: &str, at: usize) -> Result<String, ConnInfoError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ConnInfoError(format!(
                        "the {what} at character {at} holds a % that is not followed by two hex \
                         digits (write a % itself as %25)"
                    ))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        ConnInfoError(format!(
            "the {what} at character {at} is not UTF-8 once decoded"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: None,
            os_user: Some("alice".into()),
        }
    }

    #[test]
    fn parses_keyword_value_with_quotes_and_escapes() {
        let c = ConnInfo::parse(r"host=/tmp port = 5433 password='it\'s a \\ secret' dbname=app")
            .unwrap();
        assert_eq!(c.get("host"), Some("/tmp"));
        assert_eq!(c.get("port"), Some("5433"));
        assert_eq!(c.get("password"), Some(r"it's a \ secret"));
        assert_eq!(c.get("dbname"), Some("app"));
    }

    #[test]
    fn parses_url_with_percent_encoding_and_query() {
        let c = ConnInfo::parse(
            "postgresql://bob:p%40ss@db.example.com:6543/my%20db?sslmode=require&application_name=x",
        )
        .unwrap();
        assert_eq!(c.get("user"), Some("bob"));
        assert_eq!(c.get("password"), Some("p@ss"));
        assert_eq!(c.get("host"), Some("db.example.com"));
        assert_eq!(c.get("port"), Some("6543"));
        assert_eq!(c.get("dbname"), Some("my db"));
        assert_eq!(c.get("sslmode"), Some("require"));
    }

    #[test]
    fn parses_url_with_socket_dir_and_ipv6() {
        let c = ConnInfo::parse("postgres://%2Fvar%2Frun%2Fpostgresql/app").unwrap();
        assert_eq!(c.get("host"), Some("/var/run/postgresql"));
        let c = ConnInfo::parse("postgresql://[::1]:5433/app?host=/tmp").unwrap();
        assert_eq!(c.get("host"), Some("/tmp"));
        assert_eq!(c.get("port"), Some("5433"));
        let c = ConnInfo::parse("postgresql:///app").unwrap();
        assert_eq!(c.get("host"), None);
        assert_eq!(c.get("dbname"), Some("app"));
    }

    // Regression: malformed strings echoed the password, or parts of it (`invalid
    // percent-encoded token in "<password>"`, `invalid port number "<part of password>"`).
    #[test]
    fn rejects_malformed_strings_without_echoing_the_password() {
        let err = ConnInfo::parse("host=x password").unwrap_err().to_string();
        assert!(err.contains("missing \"=\" after \"password\""), "{err}");
        let err = ConnInfo::parse("hots=x").unwrap_err().to_string();
        assert!(
            err.contains("unknown parameter at character 1 (did you mean \"host\"?)"),
            "{err}"
        );
        let secret = "Qx7/zK?w9@Jm%zz";
        for (text, says) in [
            (
                format!("password='{secret}"),
                "the quoted value of \"password\" has no closing quote",
            ),
            (
                format!("host=h password={secret} x"),
                "missing \"=\" after the word at character",
            ),
            (
                "host=h password=Qx7 zK?w9@Jm%zz".to_string(),
                "missing \"=\" after the word at character 21",
            ),
            (
                format!("postgresql://u:{secret}@h/db"),
                "the port at character 16 is not a port number",
            ),
            (
                "postgresql://u:Qx7%zzK@h/db".to_string(),
                "the password at character 16 holds a %",
            ),
            (
                "postgresql://u:Qx7?zK@h/db".to_string(),
                "the port at character 16 is not a port number",
            ),
            (
                "postgresql://u@h/db?sslmode=disable&Qx7zK".to_string(),
                "the URL parameter at character 37 has no \"=\"",
            ),
        ] {
            let err = ConnInfo::parse(&text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
            for piece in ["Qx7", "zK", "w9", "Jm", "zz"] {
                assert!(!err.contains(piece), "{text}: {err} shows {piece}");
            }
        }
    }

    #[test]
    fn environment_fills_only_what_is_missing() {
        let c = ConnInfo::parse("dbname=app").unwrap().resolve(&env(&[
            ("PGHOST", "/sock"),
            ("PGPORT", "7777"),
            ("PGDATABASE", "other"),
        ]));
        assert_eq!(c.get("host"), Some("/sock"));
        assert_eq!(c.get("port"), Some("7777"));
        assert_eq!(c.get("dbname"), Some("app"));
        assert_eq!(c.get("user"), Some("alice"));
    }

    #[test]
    fn defaults_follow_libpq() {
        let c = ConnInfo::default().resolve(&env(&[]));
        assert_eq!(c.get("host"), Some(DEFAULT_SOCKET_DIR));
        assert_eq!(c.get("port"), Some("5432"));
        assert_eq!(c.get("user"), Some("alice"));
        assert_eq!(c.get("dbname"), Some("alice"));
    }

    #[test]
    fn pgpass_matches_wildcards_escapes_and_localhost_for_sockets() {
        let file = "# comment\nother:5432:*:alice:nope\nlocalhost:5433:app:alice:s3\\:cret\n*:*:*:*:fallback\n";
        assert_eq!(
            lookup_pgpass(file, ["localhost", "5433", "app", "alice"]).as_deref(),
            Some("s3:cret")
        );
        assert_eq!(
            lookup_pgpass(file, ["h", "1", "d", "u"]).as_deref(),
            Some("fallback")
        );
    }

    #[test]
    fn pgpass_file_is_read_only_when_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "localhost:5432:app:alice:filepw\n").unwrap();
        let vars = [("PGPASSFILE", path.to_str().unwrap())];
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = ConnInfo::parse("host=/tmp dbname=app")
            .unwrap()
            .resolve(&env(&vars));
        assert_eq!(c.get("password"), None, "a world-readable file is ignored");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = ConnInfo::parse("host=/tmp dbname=app")
            .unwrap()
            .resolve(&env(&vars));
        assert_eq!(c.get("password"), Some("filepw"));
        let c = ConnInfo::parse("host=/tmp dbname=app password=given")
            .unwrap()
            .resolve(&env(&vars));
        assert_eq!(c.get("password"), Some("given"));
    }

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
