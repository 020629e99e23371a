//! Helpers for the integration tests: throwaway servers ([`server`]), the source and target
//! pair with the binary pointed at them ([`pair`]), and the comparisons tests assert with
//! ([`oracles`]).

// Each test binary uses only some of these.
#![allow(dead_code, unused_imports)]

mod oracles;
mod pair;
mod server;

pub use oracles::{assert_copied_exactly, checksum, definition, summary_row};
pub use pair::{source_tables, Link, Pair};
pub use server::{chown_postgres, pg_bin, PgServer};
