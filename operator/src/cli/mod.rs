//! The subcommands of the `sanctum` binary, one module each; `main.rs` parses the command
//! line and dispatches here.

pub mod audit;
pub mod backup;
pub mod plugin;
pub mod run;
