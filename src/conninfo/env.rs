//! Where missing connection parameters come from, the way libpq fills them: the `PG*`
//! environment variables, built-in defaults, and the password file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ConnInfo, DEFAULT_SOCKET_DIR, KEYWORDS};

/// Where the process's environment and home directory come from; a trait-free struct so that
/// tests can resolve conninfo without touching the real environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// Environment variables (`PGHOST`, `PGPASSFILE`, ...).
    pub vars: BTreeMap<String, String>,
    /// The home directory, for `~/.pgpass`.
    pub home: Option<PathBuf>,
    /// The operating-system user name, libpq's default for `user`, from `USER` or `LOGNAME`.
    pub os_user: Option<String>,
    /// Whether to ask `id -un` for it when neither is set: the first time a connection lacks a
    /// user (a process to start, some 15 ms, that a run naming its users never pays).
    ask_os_user: bool,
    /// What `id -un` said.
    asked: std::sync::OnceLock<Option<String>>,
}

impl Env {
    /// Reads the real process environment.
    pub fn from_process() -> Env {
        let vars = std::env::vars().collect::<BTreeMap<_, _>>();
        let home = vars.get("HOME").map(PathBuf::from);
        let os_user = vars.get("USER").or_else(|| vars.get("LOGNAME")).cloned();
        Env {
            ask_os_user: os_user.is_none(),
            vars,
            home,
            os_user,
            asked: Default::default(),
        }
    }

    /// The operating-system user name (see [`Env::os_user`]).
    fn os_user(&self) -> Option<String> {
        if self.os_user.is_some() || !self.ask_os_user {
            return self.os_user.clone();
        }
        self.asked.get_or_init(current_os_user).clone()
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

impl ConnInfo {
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
            if let Some(user) = env.os_user() {
                params.insert("user".into(), user);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment with `vars`, no home directory, and alice as the OS user.
    fn env(vars: &[(&str, &str)]) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: None,
            os_user: Some("alice".into()),
            ..Default::default()
        }
    }

    /// Without USER or LOGNAME, the user is asked of the system, and only when a connection
    /// lacks one.
    #[test]
    fn the_os_user_is_asked_for_only_when_a_connection_lacks_a_user() {
        let env = Env {
            ask_os_user: true,
            ..Default::default()
        };
        let named = ConnInfo::parse("user=bob dbname=app")
            .unwrap()
            .resolve(&env);
        assert_eq!(named.get("user"), Some("bob"));
        assert!(env.asked.get().is_none(), "asked without need");
        let id = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        let me = String::from_utf8(id.stdout).unwrap().trim().to_string();
        let unnamed = ConnInfo::parse("dbname=app").unwrap().resolve(&env);
        assert_eq!(unnamed.get("user"), Some(me.as_str()));
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
}
