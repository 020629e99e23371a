//! Faults in the middle of a large load: the tool interrupted or killed, the source stopped,
//! the target session terminated. Every table keeps exactly its previous contents, no session
//! of snapcopy stays behind on either server, and the next run succeeds without cleanup.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{checksum, Link, Pair};

/// Starts a reload of `big` and `small` in the background and returns once the target is
/// busy inserting rows.
fn start_reload(pair: &Pair) -> Child {
    let child = pair.spawn(&["-q", "big", "small"]);
    pair.wait_for_target_statement("INSERT INTO \"public\".\"big\"");
    // Let it get well into the rows.
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// Sessions snapcopy (or its link) has open on a server, other than idle checks.
fn leftovers(server: &common::PgServer, db: &str) -> String {
    server.psql(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'snapcopy' AND pid <> pg_backend_pid()",
    )
}

fn wait_for_no_leftovers(pair: &Pair) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (t, s) = (
            leftovers(&pair.target, "dev"),
            leftovers(&pair.source, "app"),
        );
        if t == "0" && s == "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "snapcopy sessions left behind: {t} on the target, {s} on the source"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_unchanged(pair: &Pair, before: &(String, String), fault: &str) {
    assert_eq!(
        checksum(&pair.target, "dev", "public.big"),
        before.0,
        "big after {fault}"
    );
    assert_eq!(
        checksum(&pair.target, "dev", "public.small"),
        before.1,
        "small after {fault}"
    );
}

fn grow_source(pair: &Pair, n: i32) {
    pair.source.psql(
        "app",
        &format!("INSERT INTO public.small VALUES ({n}); INSERT INTO public.big (small_id, pad) SELECT {n}, 'new' FROM generate_series(1, 10)"),
    );
}

fn a_fault_in_the_middle_of_a_load_leaves_every_table_whole(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql(
        "app",
        "CREATE TABLE public.small (id int PRIMARY KEY); INSERT INTO public.small SELECT generate_series(1, 10); \
         CREATE TABLE public.big (id bigserial PRIMARY KEY, small_id int REFERENCES public.small, pad text); \
         INSERT INTO public.big (small_id, pad) SELECT 1 + g % 10, repeat(md5(g::text), 4) FROM generate_series(1, 800000) g",
    );
    pair.snapcopy()
        .args(["-q", "big", "small"])
        .assert()
        .success();
    let before = (
        checksum(&pair.target, "dev", "public.big"),
        checksum(&pair.target, "dev", "public.small"),
    );

    // (a) SIGINT: the tool cancels its queries and exits non-zero.
    grow_source(&pair, 101);
    let child = start_reload(&pair);
    send_signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("interrupted (SIGINT): the running loads were cancelled"));
    wait_for_no_leftovers(&pair);
    assert_unchanged(&pair, &before, "SIGINT");

    // (a') SIGTERM, what timeout, systemd and container runtimes send: the same.
    grow_source(&pair, 105);
    let child = start_reload(&pair);
    send_signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    wait_for_no_leftovers(&pair);
    assert_unchanged(&pair, &before, "SIGTERM");

    // (b) SIGKILL: the servers notice the tool is gone and roll back.
    grow_source(&pair, 102);
    let mut child = start_reload(&pair);
    child.kill().unwrap();
    let _ = child.wait();
    wait_for_no_leftovers(&pair);
    assert_unchanged(&pair, &before, "SIGKILL");

    // (c) The target session terminated by an administrator.
    grow_source(&pair, 103);
    let child = start_reload(&pair);
    pair.target.psql(
        "dev",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO \"public\".\"big\"%'",
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    wait_for_no_leftovers(&pair);
    assert_unchanged(&pair, &before, "pg_terminate_backend");

    // (d) The source server stopped.
    grow_source(&pair, 104);
    let child = start_reload(&pair);
    pair.source.stop();
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    pair.source.restart();
    wait_for_no_leftovers(&pair);
    assert_unchanged(&pair, &before, "the source stopping");

    // The next run needs no cleanup and brings everything the source has.
    pair.snapcopy()
        .args(["-q", "big", "small"])
        .assert()
        .success();
    assert_eq!(
        checksum(&pair.target, "dev", "public.big"),
        checksum(&pair.source, "app", "public.big")
    );
    assert_eq!(
        checksum(&pair.target, "dev", "public.small"),
        checksum(&pair.source, "app", "public.small")
    );
}

/// Sends a signal by name with kill(1), to stay free of unsafe code and libc.
fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

// Regression: SIGTERM and SIGHUP did not end a run that was stalled connecting.
#[test]
fn a_signal_ends_a_run_stalled_while_connecting() {
    // A "server" that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        let child = Command::new(assert_cmd::cargo::cargo_bin("snapcopy"))
            .args([
                "--source",
                &format!("host=127.0.0.1 port={port} dbname=app user=x sslmode=disable"),
                "--target",
                &format!("host=127.0.0.1 port={port} dbname=dev user=x sslmode=disable"),
                "t",
            ])
            .env("HOME", home.path())
            .current_dir(home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let sent = Instant::now();
        send_signal(&child, signal);
        let out = child.wait_with_output().unwrap();
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "{:?}",
            sent.elapsed()
        );
        assert_eq!(out.status.code(), Some(code), "SIG{signal}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("interrupted (SIG{signal})"))
        );
    }
    drop(silent);
}

per_link!(a_fault_in_the_middle_of_a_load_leaves_every_table_whole,);
