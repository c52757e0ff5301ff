//! The Sanctum media node (WebRTC SFU). Placeholder until the media-node work lands:
//! the operator already deploys it with its configuration and keys mounted.

#![forbid(unsafe_code)]

fn main() {
    eprintln!("sanctum-media-node: not implemented in this release");
    std::process::exit(1);
}
