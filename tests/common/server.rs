//! Throwaway PostgreSQL servers for integration tests.
//!
//! Each [`PgServer`] is a fresh cluster in its own temp dir (copied from a cached `initdb`
//! template, which is just files), on a free port with its unix socket in that dir, started as
//! the `postgres` OS user when the tests run as root (PostgreSQL refuses root). Dropping it,
//! also during a panic, stops the server and removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The directory holding initdb, pg_ctl and psql: `SNAPCOPY_PG_BIN`, or the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("SNAPCOPY_PG_BIN") {
        return PathBuf::from(dir);
    }
    for version in ["17", "16", "15"] {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    panic!("PostgreSQL server binaries not found: run scripts/test.sh, which installs them");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

extern "C" {
    fn geteuid() -> u32;
}

/// Runs a server binary, as `postgres` when we are root.
fn server_command(program: &str) -> Command {
    let path = pg_bin().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn check(output: Output, what: &str) -> Output {
    if !output.status.success() {
        panic!(
            "{what} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

pub fn chown_postgres(path: &Path) {
    if is_root() {
        check(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path)
                .output()
                .unwrap(),
            "chown",
        );
    }
}

/// An initdb'ed data directory made once per machine and copied for every server.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let version = pg_bin()
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let root = std::env::temp_dir().join(format!("snapcopy-pg-template-{version}-v1"));
        let data = root.join("data");
        if data.join("PG_VERSION").exists() {
            return data;
        }
        let staging = std::env::temp_dir().join(format!(
            "snapcopy-pg-template-{version}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).unwrap();
        chown_postgres(&staging);
        check(
            server_command("initdb")
                .arg("-D")
                .arg(staging.join("data"))
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "-N",
                ])
                .output()
                .unwrap(),
            "initdb",
        );
        // Another test process may have won the race; either template is as good.
        if std::fs::rename(&staging, &root).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        data
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running throwaway server.
pub struct PgServer {
    dir: tempfile::TempDir,
    /// The TCP port (also the socket's name).
    pub port: u16,
}

impl PgServer {
    /// Starts a server with extra `postgresql.conf` lines.
    pub fn start_with(settings: &[&str]) -> PgServer {
        let template = template();
        let dir = tempfile::Builder::new()
            .prefix("snapcopy-pg-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        check(
            Command::new("cp")
                .arg("-a")
                .arg(template)
                .arg(&data)
                .output()
                .unwrap(),
            "copy of the template cluster",
        );
        let mut conf = String::from(
            "\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             shared_buffers = 32MB\nmax_connections = 40\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '",
        );
        conf.push_str(&dir.path().to_string_lossy());
        conf.push_str("'\n");
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).unwrap();
        chown_postgres(dir.path());
        let mut server = PgServer { dir, port: 0 };
        for attempt in 0..5 {
            let port = free_port();
            let out = server_command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(server.dir.path().join("log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {port}"))
                .arg("start")
                .output()
                .unwrap();
            if out.status.success() {
                server.port = port;
                return server;
            }
            if attempt == 4 {
                let log =
                    std::fs::read_to_string(server.dir.path().join("log")).unwrap_or_default();
                panic!(
                    "could not start a test server: {}\n{log}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        unreachable!()
    }

    /// Starts a server with the test defaults.
    pub fn start() -> PgServer {
        PgServer::start_with(&[])
    }

    /// Stops the server (fast shutdown: sessions are disconnected).
    pub fn stop(&self) {
        check(
            server_command("pg_ctl")
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "fast", "-w", "stop"])
                .output()
                .unwrap(),
            "pg_ctl stop",
        );
    }

    /// Starts a stopped server again on its port.
    pub fn restart(&self) {
        check(
            server_command("pg_ctl")
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .arg("-l")
                .arg(self.dir.path().join("log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {}", self.port))
                .arg("start")
                .output()
                .unwrap(),
            "pg_ctl start",
        );
    }

    /// Puts these lines first in pg_hba.conf (they win over the test default, trust) and
    /// reloads the configuration.
    pub fn prepend_hba(&self, lines: &str) {
        let path = self.dir.path().join("data/pg_hba.conf");
        let existing = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{lines}\n{existing}")).unwrap();
        self.psql("postgres", "SELECT pg_reload_conf()");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A key=value conninfo for `db` as the superuser `postgres`.
    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host={} port={} dbname={db} user=postgres",
            self.socket_dir().display(),
            self.port
        )
    }

    /// A key=value conninfo for `db` as another role.
    pub fn conninfo_as(&self, db: &str, user: &str) -> String {
        format!(
            "host={} port={} dbname={db} user={user}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Runs SQL through psql and returns its unaligned, tuples-only output; panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = check(
            self.psql_command(db).arg("-c").arg(sql).output().unwrap(),
            sql,
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    /// Runs a SQL file through psql; panics on error.
    pub fn psql_file(&self, db: &str, path: &Path) {
        check(
            self.psql_command(db).arg("-f").arg(path).output().unwrap(),
            &path.display().to_string(),
        );
    }

    /// Runs SQL through psql and returns what it did, for a statement the test expects to
    /// fail.
    pub fn try_psql(&self, db: &str, sql: &str) -> std::process::Output {
        self.psql_command(db).arg("-c").arg(sql).output().unwrap()
    }

    /// psql on `db` as postgres (unaligned, tuples only, quiet, stopping at the first error),
    /// for a test that runs it its own way (in the background, say); add `-c` or `-f`.
    pub fn psql_command(&self, db: &str) -> Command {
        let mut c = Command::new(pg_bin().join("psql"));
        c.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", db])
            .env_remove("PGOPTIONS");
        c
    }

    /// Creates a database.
    pub fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = server_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
