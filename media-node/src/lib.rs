//! The Sanctum media node: a WebRTC SFU (see `sanctum-media-core`) behind WHIP/WHEP
//! signaling with signed join tokens, session limits, a session log and metrics.

#![forbid(unsafe_code)]

pub mod audit;
pub mod cli;
pub mod control;
pub mod decrypt;
pub mod keys;
pub mod media;
pub mod metrics;
pub mod page;
pub mod placement;
pub mod recording;
pub mod server;
pub mod session_log;
pub mod signaling;
pub mod state;
pub mod tcp;
pub mod token;
pub mod turn;
pub mod udp;
