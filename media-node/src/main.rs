//! `sanctum-media-node`: the media node binary. `serve` runs the node; `mint-token`,
//! `keygen` and `decrypt` are tools.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use sanctum_media_node::cli::serve::{ServeArgs, serve};
use sanctum_media_node::cli::tools::{
    DecryptArgs, KeygenArgs, MintArgs, decrypt, keygen, mint_token,
};

/// Sanctum media node: WebRTC SFU with WHIP/WHEP signaling and signed join tokens.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the media node (configured from the environment the operator's Deployment sets).
    Serve(Box<ServeArgs>),
    /// Print a join token signed with a tenant's private key (tests, local use).
    MintToken(MintArgs),
    /// Write a join-token key pair, a local master key and a wrapped tenant key (local use).
    Keygen(KeygenArgs),
    /// Read a sealed recording back to WebM, verifying every chunk.
    Decrypt(Box<DecryptArgs>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::MintToken(a) => mint_token(&a),
        Command::Keygen(a) => keygen(&a),
        Command::Decrypt(a) => decrypt(*a).await,
    }
}
