//! `snapcopy.toml`: the same choices as the command line, kept in a file. Unknown keys are
//! errors that name the key, so a typo never silently changes what runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{LinkKind, Mode, StagingKind};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Table patterns to copy when none are given on the command line.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Patterns to leave out, added to `--exclude`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `full` or `incremental`.
    pub mode: Option<Mode>,
    /// Load rows into the target's own tables, leaving their definitions alone.
    pub data_only: Option<bool>,
    /// With `data_only`: create the chosen tables the target lacks.
    pub create_missing: Option<bool>,
    /// `view` or `matview`.
    pub staging: Option<StagingKind>,
    /// `dblink` or `postgres_fdw`.
    pub link: Option<LinkKind>,
    /// Schema for snapcopy's objects on the target.
    pub staging_schema: Option<String>,
    /// Target sessions at once.
    pub jobs: Option<usize>,
    /// Whether the tables' triggers are copied (default true).
    pub triggers: Option<bool>,
    /// The source connection.
    #[serde(default)]
    pub source: SourceSection,
    /// The target connection.
    #[serde(default)]
    pub target: TargetSection,
    /// Per-table settings, keyed by `schema.table` (a bare name means `public`).
    #[serde(default)]
    pub table: BTreeMap<String, TableSection>,
    /// Where the mask key comes from.
    #[serde(default)]
    pub mask: MaskSection,
    /// Run `snapcopy audit` before a copy and refuse to copy while sensitive-looking columns
    /// have no mask rule.
    pub strict_masks: Option<bool>,
    /// The directory of the file, which relative paths in it start from.
    #[serde(skip)]
    pub dir: Option<PathBuf>,
}

/// `[mask]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskSection {
    /// A file holding the mask key (SNAPCOPY_MASK_KEY wins): readable by its owner only.
    pub key_file: Option<PathBuf>,
}

/// `[table."schema.name"]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSection {
    /// A column whose values only grow (a timestamp, a bigint sequence): incremental mode
    /// reads only rows at or above the last copy's maximum of it.
    pub key: Option<String>,
    /// Mask rules by column name (`email = "email"`).
    #[serde(default)]
    pub mask: BTreeMap<String, String>,
    /// A row filter: SQL over the table's columns, evaluated on the source; the rows of the
    /// tables that reference it follow.
    #[serde(rename = "where")]
    pub where_: Option<String>,
}

/// `[source]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// libpq URL or conninfo.
    pub conninfo: Option<String>,
    /// How the target server reaches the source.
    pub via: Option<String>,
    /// Refuse to run when the source role may write to a chosen table.
    #[serde(default)]
    pub require_read_only: bool,
}

/// `[target]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// libpq URL or conninfo.
    pub conninfo: Option<String>,
    /// Allow a target that is not on this machine.
    #[serde(default)]
    pub allow_remote: bool,
}

/// The largest config file snapcopy reads: a config is a few lines; anything larger is a
/// mistake (`--config /dev/zero` would be read without end).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl Config {
    /// Reads and parses a config file; the error names the file, the line and the key. A path
    /// that is not a regular file, or a file over 1 MiB, is refused before reading it.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let fail = |why: String| anyhow::anyhow!("config file {}: {why}", path.display());
        let meta = std::fs::metadata(path).map_err(|e| fail(format!("could not read it: {e}")))?;
        if !meta.is_file() {
            return Err(fail(
                "not a regular file; give the path of a snapcopy.toml".to_string(),
            ));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(fail(format!(
                "{} bytes, more than a config file holds (at most 1 MiB)",
                meta.len()
            )));
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(
                std::fs::File::open(path).map_err(|e| fail(format!("could not read it: {e}")))?,
                MAX_CONFIG_BYTES,
            ),
            &mut text,
        )
        .map_err(|e| fail(format!("could not read it: {e}")))?;
        let mut config = Config::parse(&text).map_err(|e| fail(e.trim_end().to_string()))?;
        config.dir = path.parent().map(Path::to_path_buf);
        Ok(config)
    }

    /// Parses config text; the error is toml's, which names the line and the unknown key, and
    /// may show the line: passwords in it are masked.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| mask_secrets(&e.to_string()))
    }
}

/// `text` with password-looking values masked: the password of a URL's user information
/// (`postgresql://user:********@host`) and the value after `password=` or `password =`.
pub fn mask_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let url = rest.find("://").map(|i| (i + 3, true));
        let key = rest
            .to_ascii_lowercase()
            .find("password")
            .map(|i| (i + "password".len(), false));
        let Some((at, is_url)) = [url, key].into_iter().flatten().min() else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let stop = |c: char| c.is_whitespace() || c == '"' || c == '\'';
        if is_url {
            // user:password@host: mask between the first ':' and the last '@' of the word.
            let word_end = rest.find(stop).unwrap_or(rest.len());
            let word = &rest[..word_end];
            if let (Some(colon), Some(at_sign)) = (word.find(':'), word.rfind('@')) {
                if colon < at_sign && !word[..colon].contains('/') {
                    out.push_str(&word[..=colon]);
                    out.push_str("********");
                    rest = &rest[at_sign..];
                }
            }
            continue;
        }
        // password = value, password=value, password = "value"
        let spaces = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        if rest[spaces..].starts_with('=') {
            let after = &rest[spaces + 1..];
            let lead = after.len() - after.trim_start_matches([' ', '\t', '"', '\'']).len();
            let value = &after[lead..];
            let end = value.find(stop).unwrap_or(value.len());
            out.push_str(&rest[..spaces + 1 + lead]);
            if end > 0 {
                out.push_str("********");
            }
            rest = &value[end..];
        }
    }
    out
}

/// The file `snapcopy init` writes: every key, commented, with its default.
pub const TEMPLATE: &str = r#"# snapcopy.toml: what `snapcopy` copies, from where, to where.
# Command-line flags and SNAPCOPY_* variables override what is set here.

# Tables to copy when none are named on the command line: schema.table, a bare name (public),
# or globs such as "public.*". Double quotes keep case: '"Sales"."Orders"'.
tables = ["public.*"]

# Tables to leave out.
# exclude = ["public.audit_*"]

# full: truncate and reload each table atomically. incremental: insert missing rows.
# sync: insert, update and delete only the rows that differ from the source's.
# mode = "full"

# view: a view over the link per table. matview: a materialized view (rows kept locally too).
# staging = "view"

# How the target server reads the source. dblink: every table of a run in one source snapshot.
# postgres_fdw: foreign tables, for targets that offer only postgres_fdw; each group of tables
# tied by foreign keys reads in a snapshot of its own.
# link = "dblink"

# Schema on the target for snapcopy's own objects (staging objects, its table registry).
# staging_schema = "snapcopy"

# Target sessions working at once.
# jobs = 1

# Copy the tables' triggers (created after the rows; they never fire on snapcopy's loads).
# triggers = true

# Refuse to copy while `snapcopy audit` finds sensitive-looking columns without a mask rule.
# strict_masks = false

# Load rows into the tables your migrations made (columns matched by name), never changing
# their definitions. create_missing: create the chosen tables the target lacks.
# data_only = false
# create_missing = false

[source]
# libpq URL or key=value conninfo. Keep passwords in ~/.pgpass or PGPASSWORD, not here.
# conninfo = "postgresql://readonly@prod-db.example.com/app"
# How the target server reaches the source, if not the same way (a container, a tunnel).
# via = "host=host.docker.internal"
# Refuse to run when the source role may write to a chosen table (it should have only SELECT).
# require_read_only = false

[target]
# conninfo = "postgresql:///app_dev"
# snapcopy writes to the target; one that is not on this machine must be allowed on purpose.
# allow_remote = false

# Per table: a column whose values only grow, for incremental refreshes of tables whose key
# does not (a uuid key, say). Rows at or above the last copy's maximum are read.
# [table."public.events"]
# key = "created_at"

# Masks: what a column becomes before it leaves the source (null, email, name, phone, hash,
# digits, value:<literal>, sql:<expression>, or keep for a column that is not sensitive).
# The key makes masks deterministic: the same value masks the same way on every run.
# [mask]
# key_file = "mask.key"        # readable by its owner only; SNAPCOPY_MASK_KEY wins
# [table."public.users".mask]
# email = "email"
# phone = "phone"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses() {
        let c = Config::parse(TEMPLATE).unwrap();
        assert_eq!(c.tables, ["public.*"]);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("tabels = [\"x\"]\n").unwrap_err();
        assert!(err.contains("unknown field `tabels`"), "{err}");
        let err = Config::parse("[source]\nconnifo = \"x\"\n").unwrap_err();
        assert!(err.contains("unknown field `connifo`"), "{err}");
    }

    #[test]
    fn reads_every_section() {
        let c = Config::parse(
            "mode = \"full\"\nstaging = \"matview\"\njobs = 3\n[source]\nconninfo = \"host=a\"\nvia = \"host=b\"\n[target]\nconninfo = \"host=c\"\n",
        )
        .unwrap();
        assert_eq!(c.staging, Some(StagingKind::Matview));
        assert_eq!(c.jobs, Some(3));
        assert_eq!(c.source.via.as_deref(), Some("host=b"));
        assert_eq!(c.target.conninfo.as_deref(), Some("host=c"));
    }

    // Regression: a TOML error on a line holding a password printed that line as it was.
    #[test]
    fn a_parse_error_masks_the_passwords_of_the_line_it_shows() {
        for text in [
            "[source]\nconninfo = \"postgresql://reader:Qx7zK@prod/app\nmode = 1\n",
            "[source]\nconninfo = 'host=prod password=Qx7zK dbname=app\n",
            "[source]\nconninfo = \"host=prod password = 'Qx7zK' port\nx\n",
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains("********"), "{err}");
            assert!(!err.contains("Qx7zK"), "{err}");
        }
        assert_eq!(
            mask_secrets("postgresql://u:p@ss@h/db password=x passwords"),
            "postgresql://u:********@h/db password=******** passwords"
        );
    }

    #[test]
    fn reads_per_table_keys_and_names_unknown_ones() {
        let c = Config::parse("[table.\"public.events\"]\nkey = \"created_at\"\n").unwrap();
        assert_eq!(c.table["public.events"].key.as_deref(), Some("created_at"));
        let err = Config::parse("[table.events]\ncursor = \"x\"\n").unwrap_err();
        assert!(err.contains("unknown field `cursor`"), "{err}");
    }
}
