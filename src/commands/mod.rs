//! One module per command: each turns its arguments into work and an [`Outcome`]. The main
//! job and `plan` share [`copy`]; which tables a run takes is [`select`]'s business.
//!
//! [`Outcome`]: crate::Outcome

pub mod audit;
pub mod copy;
pub mod init;
pub mod select;
pub mod status;
pub mod teardown;
pub mod verify;
