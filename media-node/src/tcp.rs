//! ICE-TCP (RFC 6544): a passive TCP candidate for clients whose networks refuse UDP.
//!
//! Each accepted connection carries RFC 4571 frames (a 16-bit length, then one STUN, DTLS
//! or SRTP packet). A task per connection reads frames and hands them to the SFU driver
//! with the connection's address, and writes the frames the driver queues for that
//! address. The driver closes a connection whose frame no session claims (see
//! [`TcpLinks::receive_claimed`]), so a connection only lives while it belongs to a session;
//! the listener holds at most [`MAX_CONNECTIONS`] and drops one silent for [`READ_IDLE`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// Most ICE-TCP connections open at once; further connections wait in the backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// A connection with no frame for this long is closed (ICE consent checks arrive every
/// few seconds on a live session, RFC 7675).
pub const READ_IDLE: Duration = Duration::from_secs(30);
/// A new connection must send its first frame (a STUN binding request) within this.
pub const FIRST_FRAME: Duration = Duration::from_secs(10);
/// Frames queued for one connection before further ones are dropped, as UDP would.
const WRITE_QUEUE: usize = 512;

/// What connection tasks tell the driver.
#[derive(Debug)]
pub enum TcpEvent {
    /// A connection was accepted; frames for `source` go to `tx`.
    Opened {
        /// Connection id (addresses can be reused after a close).
        id: u64,
        /// The client's address.
        source: SocketAddr,
        /// Where its outgoing frames go.
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// One frame arrived.
    Frame {
        /// The client's address.
        source: SocketAddr,
        /// The frame without its length prefix.
        data: Vec<u8>,
    },
    /// The connection ended.
    Closed {
        /// Connection id.
        id: u64,
        /// The client's address.
        source: SocketAddr,
    },
}

/// Accepts connections on `listener` until `events` closes.
pub async fn serve(listener: TcpListener, events: mpsc::Sender<TcpEvent>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut next_id = 0u64;
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, source) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "ICE-TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = events.closed() => return,
        };
        next_id += 1;
        let id = next_id;
        let events = events.clone();
        tokio::spawn(async move {
            connection(id, stream, source, events).await;
            drop(permit);
        });
    }
}

async fn connection(
    id: u64,
    stream: TcpStream,
    source: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
) {
    let _ = stream.set_nodelay(true);
    let (tx, mut outgoing) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    if events
        .send(TcpEvent::Opened { id, source, tx })
        .await
        .is_err()
    {
        return;
    }
    let (reader, mut writer) = stream.into_split();
    let mut batch = Vec::new();
    // Reading a frame is not cancellation-safe, so it runs as its own future polled across
    // loop turns; writes happen between its polls.
    let read = read_frames(reader, events.clone(), source);
    tokio::pin!(read);
    loop {
        tokio::select! {
            _ = &mut read => break,
            frame = outgoing.recv() => {
                let Some(frame) = frame else { break };
                batch.clear();
                push_framed(&mut batch, &frame);
                while batch.len() < 64 * 1024 {
                    match outgoing.try_recv() {
                        Ok(frame) => push_framed(&mut batch, &frame),
                        Err(_) => break,
                    }
                }
                if writer.write_all(&batch).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = events.send(TcpEvent::Closed { id, source }).await;
}

/// Reads frames and forwards them until the connection ends, stays silent too long, or
/// the driver stops.
async fn read_frames(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    events: mpsc::Sender<TcpEvent>,
    source: SocketAddr,
) {
    let mut wait = FIRST_FRAME;
    loop {
        let frame = tokio::time::timeout(wait, read_frame(&mut reader)).await;
        let Ok(Ok(data)) = frame else { return };
        wait = READ_IDLE;
        if data.is_empty() {
            continue;
        }
        if events.send(TcpEvent::Frame { source, data }).await.is_err() {
            return;
        }
    }
}

async fn read_frame(reader: &mut tokio::net::tcp::OwnedReadHalf) -> std::io::Result<Vec<u8>> {
    let len = reader.read_u16().await?;
    let mut data = vec![0u8; usize::from(len)];
    reader.read_exact(&mut data).await?;
    Ok(data)
}

/// Appends `frame` with its RFC 4571 length prefix; frames over 65535 bytes cannot be
/// framed and are dropped (str0m's packets are far smaller).
pub fn push_framed(out: &mut Vec<u8>, frame: &[u8]) {
    if let Ok(len) = u16::try_from(frame.len()) {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(frame);
    }
}

/// The driver's side: open connections by client address.
#[derive(Default)]
pub struct TcpLinks {
    links: HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)>,
}

impl TcpLinks {
    /// Applies a connection event; returns the frame to feed the SFU, if it is one.
    pub fn event(&mut self, event: TcpEvent) -> Option<(SocketAddr, Vec<u8>)> {
        match event {
            TcpEvent::Opened { id, source, tx } => {
                self.links.insert(source, (id, tx));
                None
            }
            TcpEvent::Frame { source, data } => {
                self.links.contains_key(&source).then_some((source, data))
            }
            TcpEvent::Closed { id, source } => {
                if self.links.get(&source).is_some_and(|(open, _)| *open == id) {
                    self.links.remove(&source);
                }
                None
            }
        }
    }

    /// After the SFU saw `source`'s frame: a frame no session claims closes its connection.
    /// Returns whether the connection stays.
    pub fn receive_claimed(&mut self, source: SocketAddr, claimed: bool) -> bool {
        if !claimed {
            // Dropping the sender ends the connection's task, which closes the socket.
            self.links.remove(&source);
        }
        claimed
    }

    /// Queues a frame for `destination`; false when there is no such connection or its
    /// queue is full (the frame is dropped, as a congested UDP path would).
    pub fn send(&mut self, destination: SocketAddr, frame: Vec<u8>) -> bool {
        let Some((_, tx)) = self.links.get(&destination) else {
            return false;
        };
        match tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.links.remove(&destination);
                false
            }
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_a_big_endian_length() {
        let mut out = Vec::new();
        push_framed(&mut out, &[1, 2, 3]);
        push_framed(&mut out, &[]);
        assert_eq!(out, vec![0, 3, 1, 2, 3, 0, 0]);
        let mut big = Vec::new();
        push_framed(&mut big, &vec![0u8; 70_000]);
        assert!(big.is_empty(), "an unframeable packet was written");
    }

    #[tokio::test]
    async fn frames_flow_both_ways_and_an_unclaimed_frame_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, mut rx) = mpsc::channel(16);
        tokio::spawn(serve(listener, tx));
        let mut links = TcpLinks::default();

        let mut client = TcpStream::connect(addr).await.expect("connect");
        let opened = rx.recv().await.expect("opened");
        assert!(links.event(opened).is_none());
        assert_eq!(links.len(), 1);
        client.write_all(&[0, 2, 9, 9]).await.expect("write");
        let (source, data) = links
            .event(rx.recv().await.expect("frame"))
            .expect("a frame");
        assert_eq!(data, vec![9, 9]);
        assert!(links.send(source, vec![7, 7, 7]));
        let mut reply = [0u8; 5];
        client.read_exact(&mut reply).await.expect("reply");
        assert_eq!(reply, [0, 3, 7, 7, 7]);

        // No session claimed it: the node closes the connection.
        assert!(!links.receive_claimed(source, false));
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        assert_eq!(n, 0, "the node sent more after closing");
        assert!(matches!(
            rx.recv().await.expect("closed"),
            TcpEvent::Closed { .. }
        ));
        assert!(!links.send(source, vec![1]), "a closed link took a frame");
    }
}
