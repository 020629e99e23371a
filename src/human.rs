//! How numbers read for people, the same on progress lines, bars and summaries: counts with
//! thousands separators, sizes the way `pg_size_pretty` prints them, rates short.

/// A count with thousands separators, as the progress bars print them: `1,234,567`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Sizes the way `pg_size_pretty` prints them.
pub fn bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 10240.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{:.0} {}", value, UNITS[unit])
    }
}

/// Rows a second, in three significant figures at most: `950 rows/s`, `682k rows/s`,
/// `1.25M rows/s`.
pub fn row_rate(per_second: f64) -> String {
    format!("{} rows/s", short(per_second))
}

/// Megabytes (of 1024 × 1024 bytes, as `pg_size_pretty` counts) a second: `45 MB/s`,
/// `0.8 MB/s`.
pub fn byte_rate(per_second: f64) -> String {
    let mb = per_second / (1024.0 * 1024.0);
    if mb < 10.0 {
        format!("{mb:.1} MB/s")
    } else {
        format!("{mb:.0} MB/s")
    }
}

/// A number with a k or M suffix and no more digits than say something.
fn short(value: f64) -> String {
    let value = value.max(0.0);
    let (scaled, suffix) = if value >= 999_500.0 {
        (value / 1e6, "M")
    } else if value >= 999.5 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let digits = if suffix.is_empty() || scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{scaled:.digits$}");
    // 12.0k reads better as 12k.
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_200_000), "1,200,000");
        assert_eq!(count(-1234), "-1,234");
        assert_eq!(count(i64::MIN), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(bytes(8192), "8192 bytes");
        assert_eq!(bytes(16384), "16 kB");
        assert_eq!(bytes(50 * 1024 * 1024), "50 MB");
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(row_rate(681_561.399_5), "682k rows/s");
        assert_eq!(row_rate(950.2), "950 rows/s");
        assert_eq!(row_rate(12_040.0), "12k rows/s");
        assert_eq!(row_rate(1_254_000.0), "1.25M rows/s");
        assert_eq!(row_rate(999_700.0), "1M rows/s");
        assert_eq!(row_rate(0.0), "0 rows/s");
        assert_eq!(byte_rate(45.4 * 1024.0 * 1024.0), "45 MB/s");
        assert_eq!(byte_rate(0.8 * 1024.0 * 1024.0), "0.8 MB/s");
    }
}
