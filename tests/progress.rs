//! A long single-table load shows progress: with a non-terminal stderr, periodic log lines
//! with growing row counts; and the rows come in batches, so the target's temp space stays
//! bounded instead of holding the whole table.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use common::{checksum, Pair};

#[test]
fn a_large_table_loads_in_batches_with_periodic_progress_lines() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.big (id bigint PRIMARY KEY, pad text); \
         INSERT INTO public.big SELECT g, repeat(md5(g::text), 5) FROM generate_series(1, 1200000) g; \
         ANALYZE public.big",
    );
    let table_mb: i64 = pair
        .source
        .psql("app", "SELECT pg_table_size('public.big') / 1048576")
        .parse()
        .unwrap();

    // Watch the target's temp files while the load runs.
    let peak = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, stop) = (peak.clone(), stop.clone());
        let conninfo = pair.target.conninfo("dev");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = Command::new(common::pg_bin().join("psql"))
                    .args(["-X", "-A", "-t", "-d", &conninfo, "-c"])
                    .arg("SELECT coalesce(sum(size), 0) / 1048576 FROM pg_ls_tmpdir()")
                    .output()
                    .unwrap();
                if let Ok(mb) = String::from_utf8_lossy(&out.stdout).trim().parse::<i64>() {
                    peak.fetch_max(mb, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    // assert_cmd captures stderr through a pipe: not a terminal, so plain lines.
    let out = pair.snapcopy().arg("big").output().unwrap();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("copying public.big (about 1,200,000 rows)"),
        "{stderr}"
    );
    let counts: Vec<i64> = stderr
        .lines()
        .filter(|l| l.starts_with("public.big: ") && l.contains(" of about 1,200,000 rows ("))
        .map(|l| {
            l.trim_start_matches("public.big: ")
                .split(' ')
                .next()
                .unwrap()
                .replace(',', "")
                .parse()
                .unwrap()
        })
        .collect();
    // Rates read short: `372k rows/s, ~41 MB/s`, never `371843.2/s`.
    let rate = stderr
        .lines()
        .find(|l| l.contains(" of about 1,200,000 rows ("))
        .and_then(|l| l.split("%), ").nth(1))
        .unwrap_or_default();
    let (rows, mb) = rate.split_once(", ~").unwrap_or_default();
    let number = rows
        .strip_suffix(" rows/s")
        .map(|n| n.trim_end_matches(['k', 'M']))
        .unwrap_or_default();
    assert!(number.len() <= 4 && number.parse::<f64>().is_ok(), "{rate}");
    assert!(
        mb.ends_with(" MB/s") && mb.trim_end_matches(" MB/s").parse::<f64>().is_ok(),
        "{rate}"
    );
    assert!(
        counts.len() >= 2,
        "periodic progress lines expected: {stderr}"
    );
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
    assert!(stderr.contains("public.big: 1,200,000 rows in"), "{stderr}");
    // The summary counts like the progress lines.
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains(" 1,200,000 "), "{summary}");
    assert_eq!(
        checksum(&pair.target, "dev", "public.big"),
        checksum(&pair.source, "app", "public.big")
    );
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak < table_mb / 2,
        "temp files peaked at {peak} MB for a {table_mb} MB table"
    );
}
