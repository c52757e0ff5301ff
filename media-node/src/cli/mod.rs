//! The subcommands of the `sanctum-media-node` binary; `main.rs` parses the command line
//! and dispatches here.

pub mod serve;
pub mod tools;
