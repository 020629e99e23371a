//! The source: what the chosen tables are made of, read once from the source server in the
//! run's snapshot, and the read-only session that holds that snapshot.
//!
//! Introspection runs with `search_path = ''`, so every type, collation and expression text that
//! PostgreSQL prints is schema-qualified and means the same thing on the target. The queries
//! live in `sql/*.sql`, one a file, and take the table oids as a bind parameter.

mod depends;
mod model;
mod parts;
mod probe;
mod read;
mod session;
mod shape;
mod types;

pub use depends::{Collation, Function, Requirement};
pub use model::*;
pub use probe::{Probe, Probed};
pub use read::{candidates, introspect, read_extents, with_partitions};
pub use session::{open_snapshot, origin, ChangeMark, Snapshot, MARK_SPAN};
pub use shape::{Shape, ShapeDifference};
