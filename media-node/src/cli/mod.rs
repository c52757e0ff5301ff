//! The subcommands of the `sanctum-media-node` binary; `main.rs` parses the command line
//! with [`Cli`] (here, so the documentation's examples can be parsed by tests) and
//! dispatches.

pub mod serve;
pub mod tools;

use clap::{Parser, Subcommand};

use serve::ServeArgs;
use tools::{DecryptArgs, KeygenArgs, MintArgs};

/// Sanctum media node: WebRTC SFU with WHIP/WHEP signaling and signed join tokens.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, each in [`crate::cli`].
#[derive(Subcommand)]
pub enum Command {
    /// Run the media node (configured from the environment the operator's Deployment sets).
    Serve(Box<ServeArgs>),
    /// Print a join token signed with a tenant's private key (tests, local use).
    MintToken(MintArgs),
    /// Write a join-token key pair, a local master key and a wrapped tenant key (local use).
    Keygen(KeygenArgs),
    /// Read a sealed recording back to WebM, verifying every chunk.
    Decrypt(Box<DecryptArgs>),
}
