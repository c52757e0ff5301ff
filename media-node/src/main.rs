//! `sanctum-media-node`: the media node binary. `serve` runs the node; `mint-token`,
//! `keygen` and `decrypt` are tools.

#![forbid(unsafe_code)]

use clap::Parser as _;
use sanctum_media_node::cli::serve::serve;
use sanctum_media_node::cli::tools::{decrypt, keygen, mint_token};
use sanctum_media_node::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::MintToken(a) => mint_token(&a),
        Command::Keygen(a) => keygen(&a),
        Command::Decrypt(a) => decrypt(*a).await,
    }
}
