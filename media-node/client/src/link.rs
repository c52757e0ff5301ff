//! How a session's packets travel: a UDP socket, or one ICE-TCP connection with RFC 4571
//! framing.

use std::net::SocketAddr;

use sanctum_media_core::str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// The first passive ICE-TCP host candidate of an SDP answer.
pub(crate) fn tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let value = line.trim().strip_prefix("a=candidate:")?;
        let fields: Vec<&str> = value.split_whitespace().collect();
        let passive = fields.windows(2).any(|w| w == ["tcptype", "passive"]);
        if fields.len() < 8 || !fields[2].eq_ignore_ascii_case("tcp") || !passive {
            return None;
        }
        Some(SocketAddr::new(
            fields[4].parse().ok()?,
            fields[5].parse().ok()?,
        ))
    })
}

/// Where a session's packets go and come from.
pub(crate) enum Link {
    Udp(UdpSocket),
    /// RFC 4571 frames over one connection: a task reads frames into `frames`, another
    /// writes what `out` receives.
    Tcp {
        remote: SocketAddr,
        frames: mpsc::Receiver<Vec<u8>>,
        out: mpsc::UnboundedSender<Vec<u8>>,
    },
}

impl Link {
    pub(crate) fn tcp(stream: TcpStream) -> Link {
        let remote = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (mut reader, mut writer) = stream.into_split();
        let (frames_tx, frames) = mpsc::channel(256);
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            loop {
                let Ok(len) = reader.read_u16().await else {
                    return;
                };
                let mut frame = vec![0u8; usize::from(len)];
                if reader.read_exact(&mut frame).await.is_err()
                    || frames_tx.send(frame).await.is_err()
                {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                let Ok(len) = u16::try_from(frame.len()) else {
                    continue;
                };
                let mut framed = len.to_be_bytes().to_vec();
                framed.extend_from_slice(&frame);
                if writer.write_all(&framed).await.is_err() {
                    return;
                }
            }
        });
        Link::Tcp {
            remote,
            frames,
            out,
        }
    }

    /// The next packet and its sender; `None` when the link is gone.
    pub(crate) async fn recv(&mut self, buf: &mut Vec<u8>) -> Option<(Protocol, SocketAddr)> {
        match self {
            Link::Udp(socket) => {
                buf.resize(2048, 0);
                let (n, source) = socket.recv_from(buf).await.ok()?;
                buf.truncate(n);
                Some((Protocol::Udp, source))
            }
            Link::Tcp { remote, frames, .. } => {
                *buf = frames.recv().await?;
                Some((Protocol::Tcp, *remote))
            }
        }
    }

    pub(crate) fn send(&self, contents: &[u8], destination: SocketAddr) {
        match self {
            Link::Udp(socket) => {
                let _ = socket.try_send_to(contents, destination);
            }
            Link::Tcp { out, .. } => {
                let _ = out.send(contents.to_vec());
            }
        }
    }
}
