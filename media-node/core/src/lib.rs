//! The media node's selective forwarding unit, without sockets or clocks.
//!
//! [`Sfu`] owns one str0m [`Rtc`] per peer and the rooms they share. The caller feeds it
//! datagrams and the current time and drains what it wants sent ([`Sfu::poll_transmit`])
//! and what happened ([`Sfu::poll_event`]); nothing here reads a clock, opens a socket or
//! logs personal data, so forwarding, keyframe and session-limit logic is tested with
//! simulated time and a simulated network.

#![forbid(unsafe_code)]

mod peer;
mod sfu;

pub use peer::{Direction, EndReason, PeerId, PeerInfo, Role};
pub use sfu::{AcceptError, RecordedFrame, Sfu, SfuConfig, SfuEvent};
pub use str0m;
