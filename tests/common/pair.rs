//! The source and target servers a test copies between, and the snapcopy binary pointed at
//! them.

use std::path::Path;

use super::PgServer;

/// How the target server reads the source: the tests that hold for both run once per link
/// (see [`per_link!`](crate::per_link)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// dblink, the default.
    Dblink,
    /// postgres_fdw.
    PostgresFdw,
}

impl Link {
    /// The `--link` value, which is also the extension's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Dblink => "dblink",
            Link::PostgresFdw => "postgres_fdw",
        }
    }

    /// The foreign-data wrapper its foreign server uses.
    pub fn wrapper(self) -> &'static str {
        match self {
            Link::Dblink => "dblink_fdw",
            Link::PostgresFdw => "postgres_fdw",
        }
    }
}

/// Defines, for each `fn name(link: Link)` given, a module `name` with one test per link, so
/// that a test is written once and runs on both (`name::dblink`, `name::postgres_fdw`).
#[macro_export]
macro_rules! per_link {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn dblink() {
                    super::$name(super::common::Link::Dblink)
                }

                #[test]
                fn postgres_fdw() {
                    super::$name(super::common::Link::PostgresFdw)
                }
            }
        )*
    };
}

/// A source and a target server with a database `app` on the source and `dev` on the target.
pub struct Pair {
    /// The production side.
    pub source: PgServer,
    /// The developer's side.
    pub target: PgServer,
    /// A home directory without a .pgpass, so the machine's own never leaks in.
    pub home: tempfile::TempDir,
    /// The link the binary is told to use (SNAPCOPY_LINK).
    pub link: Link,
}

impl Pair {
    /// Starts both servers and creates the databases.
    pub fn start() -> Pair {
        Pair::start_with(&[], &[])
    }

    /// Starts both servers with extra `postgresql.conf` lines each.
    pub fn start_with(source_settings: &[&str], target_settings: &[&str]) -> Pair {
        let (source, target) = std::thread::scope(|s| {
            let a = s.spawn(|| PgServer::start_with(source_settings));
            let b = s.spawn(|| PgServer::start_with(target_settings));
            (a.join().unwrap(), b.join().unwrap())
        });
        source.create_db("app");
        target.create_db("dev");
        Pair {
            source,
            target,
            home: tempfile::tempdir().unwrap(),
            link: Link::Dblink,
        }
    }

    /// The same pair, its binary told to read through `link`.
    pub fn with_link(self, link: Link) -> Pair {
        Pair { link, ..self }
    }

    /// The snapcopy binary with SNAPCOPY_SOURCE and SNAPCOPY_TARGET set (flags override them)
    /// and no other connection settings from the environment.
    pub fn snapcopy(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.command())
    }

    /// The same binary started in the background with `args`, its stderr piped, for a test
    /// that interrupts it.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command()
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits (up to a minute) until a statement starting with `prefix` runs on the target.
    pub fn wait_for_target_statement(&self, prefix: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND \
             starts_with(query, '{}')",
            prefix.replace('\'', "''")
        );
        while self.target.psql("dev", &sql) != "1" {
            assert!(
                std::time::Instant::now() < deadline,
                "no statement starting with {prefix} ran on the target"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("snapcopy"));
        for var in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGDATABASE",
            "PGPASSFILE",
            "PGSSLMODE",
            "PGOPTIONS",
            "SNAPCOPY_SOURCE",
            "SNAPCOPY_TARGET",
            "SNAPCOPY_SOURCE_VIA",
            "SNAPCOPY_LINK",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.home.path())
            .current_dir(self.home.path())
            .env("SNAPCOPY_SOURCE", self.source.conninfo("app"))
            .env("SNAPCOPY_TARGET", self.target.conninfo("dev"))
            .env("SNAPCOPY_LINK", self.link.as_str());
        cmd
    }

    /// Loads a fixture from `tests/fixtures` into the source database.
    pub fn load_fixture(&self, name: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        self.source.psql_file("app", &path);
    }
}

/// Every ordinary and partitioned table of the given schemas on the source, as `schema.table`
/// SQL names, in order.
pub fn source_tables(pair: &Pair, schemas: &[&str]) -> Vec<String> {
    let list: Vec<String> = schemas
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect();
    pair.source
        .psql(
            "app",
            &format!(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname IN ({}) ORDER BY 1",
                list.join(", ")
            ),
        )
        .lines()
        .map(str::to_string)
        .collect()
}
