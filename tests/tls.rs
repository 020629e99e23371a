//! TLS with libpq's sslmode meanings, against a source server whose certificate comes from a
//! CA the test makes: verify-full succeeds with the CA and fails for a wrong host name or CA,
//! require works without the CA, and the server-to-server link verifies the same way.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{checksum, chown_postgres, Pair};
use predicates::prelude::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for `localhost` signed by it, and an unrelated second CA.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=snapcopy test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.crt",
            "-days",
            "2",
            "-subj",
            "/CN=another CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_postgres(dir);
}

struct TlsPair {
    pair: Pair,
    certs: PathBuf,
    _dir: tempfile::TempDir,
}

fn start() -> TlsPair {
    let dir = tempfile::Builder::new()
        .prefix("snapcopy-tls-")
        .tempdir()
        .unwrap();
    certificates(dir.path());
    let cert = format!(
        "ssl_cert_file = '{}'",
        dir.path().join("server.crt").display()
    );
    let key = format!(
        "ssl_key_file = '{}'",
        dir.path().join("server.key").display()
    );
    let pair = Pair::start_with(&["ssl = on", &cert, &key], &[]);
    pair.source.psql(
        "app",
        "CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 50) g",
    );
    TlsPair {
        certs: dir.path().to_path_buf(),
        pair,
        _dir: dir,
    }
}

impl TlsPair {
    fn source(&self, host: &str, extra: &str) -> String {
        format!(
            "host={host} port={} dbname=app user=postgres {extra}",
            self.pair.source.port
        )
    }

    /// snapcopy with `args` stops before doing anything (exit 2) and says `words`.
    fn refused(&self, args: &[&str], words: &str) {
        self.pair
            .snapcopy()
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(words));
    }
}

#[test]
fn verify_full_succeeds_with_the_ca_and_checks_the_host_name() {
    let t = start();
    let ca = t.certs.join("ca.crt");
    let good = t.source(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={}", ca.display()),
    );
    t.pair
        .snapcopy()
        .args(["--source", &good, "t"])
        .assert()
        .success();
    assert_eq!(
        checksum(&t.pair.target, "dev", "public.t"),
        checksum(&t.pair.source, "app", "public.t")
    );
    // The link from the target server carries the same sslmode and CA, and is encrypted: the
    // source says so of the connection dblink opens.
    let options = t.pair.target.psql(
        "dev",
        "SELECT array_to_string(srvoptions, ',') FROM pg_foreign_server WHERE srvname = 'snapcopy_source'",
    );
    assert!(options.contains("sslmode=verify-full"), "{options}");
    assert_eq!(
        t.pair.target.psql(
            "dev",
            "SELECT ssl FROM snapcopy.dblink('snapcopy_source', \
             'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()') AS s(ssl boolean)"
        ),
        "t"
    );

    let wrong_host = t.source(
        "127.0.0.1",
        &format!("sslmode=verify-full sslrootcert={}", ca.display()),
    );
    t.refused(
        &["--source", &wrong_host, "t"],
        "does not name the host connected to",
    );

    let wrong_ca = t.source(
        "localhost",
        &format!(
            "sslmode=verify-full sslrootcert={}",
            t.certs.join("other.crt").display()
        ),
    );
    t.refused(
        &["--source", &wrong_ca, "t"],
        "not signed by a CA in sslrootcert",
    );

    // verify-ca checks the chain but not the name.
    let by_ip = t.source(
        "127.0.0.1",
        &format!("sslmode=verify-ca sslrootcert={}", ca.display()),
    );
    t.pair
        .snapcopy()
        .args(["plan", "--source", &by_ip, "t"])
        .assert()
        .success();
}

#[test]
fn require_encrypts_without_a_ca_and_a_missing_ca_file_is_named() {
    let t = start();
    let require = t.source("127.0.0.1", "sslmode=require");
    t.pair
        .snapcopy()
        .args(["--source", &require, "t"])
        .assert()
        .success();
    let missing = t.source(
        "localhost",
        "sslmode=verify-full sslrootcert=/nonexistent/root.crt",
    );
    t.refused(
        &["--source", &missing, "t"],
        "root certificate file \"/nonexistent/root.crt\" cannot be read",
    );
    // The target server has no TLS: insisting on it says so.
    let target = format!(
        "host=127.0.0.1 port={} dbname=dev user=postgres sslmode=require",
        t.pair.target.port
    );
    t.refused(
        &["--target", &target, "t"],
        "could not connect to the target database",
    );
    t.refused(
        &["--target", &target, "t"],
        "the server does not accept TLS connections",
    );
}
