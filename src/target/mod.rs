//! The target: what it has ([`state`]), read before planning, and snapcopy's registry of the
//! tables it manages there ([`registry`]).

pub mod mark;
pub mod registry;
pub mod state;
pub mod user_tables;

pub use mark::{Clock, LocalMark};
pub use registry::Managed;
pub use state::{ExtensionState, StagingObject, TargetState};
pub use user_tables::{UserColumn, UserForeignKey, UserTable};
