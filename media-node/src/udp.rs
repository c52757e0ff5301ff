//! Sending many datagrams to many addresses in one system call.
//!
//! An SFU turns one incoming packet into one outgoing packet per subscriber, each to its
//! own address. Profiling the node showed the kernel's per-call cost of `sendto` as the
//! largest share of its CPU time, so a turn's datagrams leave in one `sendmmsg(2)`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Most datagrams handed to the kernel in one call (the kernel caps it at `UIO_MAXIOV`).
pub const MAX_BATCH: usize = 256;

/// Sends a prefix of `datagrams` (at most [`MAX_BATCH`]) on a non-blocking or blocking UDP
/// socket and returns how many left. An error means the first one could not be sent:
/// `WouldBlock` when the socket buffer is full, anything else belongs to that datagram.
#[cfg(target_os = "linux")]
pub fn send_batch<B: AsRef<[u8]>>(
    socket: &impl AsRawFd,
    datagrams: &[(B, SocketAddr)],
) -> io::Result<usize> {
    use std::io::IoSlice;

    use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

    let batch = &datagrams[..datagrams.len().min(MAX_BATCH)];
    if batch.is_empty() {
        return Ok(0);
    }
    let slices: Vec<[IoSlice<'_>; 1]> = batch
        .iter()
        .map(|(data, _)| [IoSlice::new(data.as_ref())])
        .collect();
    let addresses: Vec<Option<SockaddrStorage>> = batch
        .iter()
        .map(|(_, to)| Some(SockaddrStorage::from(*to)))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch.len(), None);
    let no_control: [ControlMessage<'_>; 0] = [];
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &slices,
        &addresses,
        no_control,
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    Ok(sent.count())
}

/// Other unix systems (no `sendmmsg`): one `sendto` per datagram, same contract.
#[cfg(not(target_os = "linux"))]
pub fn send_batch<B: AsRef<[u8]>>(
    socket: &impl AsRawFd,
    datagrams: &[(B, SocketAddr)],
) -> io::Result<usize> {
    use nix::sys::socket::{MsgFlags, SockaddrStorage, sendto};

    let mut sent = 0;
    for (data, to) in datagrams.iter().take(MAX_BATCH) {
        let to = SockaddrStorage::from(*to);
        match sendto(socket.as_raw_fd(), data.as_ref(), &to, MsgFlags::empty())
            .map_err(io::Error::from)
        {
            Ok(_) => sent += 1,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn one_call_reaches_every_address_in_order() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let receivers: Vec<std::net::UdpSocket> = (0..5)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let datagrams: Vec<(Vec<u8>, SocketAddr)> = receivers
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let to = r.local_addr().expect("addr");
                [(vec![i as u8, 1], to), (vec![i as u8, 2], to)]
            })
            .collect();
        assert_eq!(send_batch(&sender, &datagrams).expect("sent"), 10);
        for (i, r) in receivers.iter().enumerate() {
            let mut buf = [0u8; 16];
            for seq in [1, 2] {
                let (n, from) = r.recv_from(&mut buf).expect("received");
                assert_eq!(&buf[..n], &[i as u8, seq]);
                assert_eq!(from, sender.local_addr().expect("addr"));
            }
        }
        assert_eq!(send_batch::<Vec<u8>>(&sender, &[]).expect("empty"), 0);
    }

    #[test]
    fn a_full_batch_is_capped() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = receiver.local_addr().expect("addr");
        let datagrams = vec![([7u8; 8], to); MAX_BATCH + 10];
        assert_eq!(send_batch(&sender, &datagrams).expect("sent"), MAX_BATCH);
    }
}
