//! Where a room lives, decided without I/O: rendezvous (highest random weight) hashing of
//! the room over the region's nodes for a new room, and what the nodes said for a room
//! that may exist already.
//!
//! The rule: a room stays on the node that hosts it while it has sessions, whoever joins
//! the region later; a room no node hosts is created on the first node, in the room's
//! rendezvous order, that is reachable and not draining. Every node computes the same
//! order from the same membership, so two joiners of a new room who reach different
//! nodes are sent to the same one.

use std::net::SocketAddr;

use sha2::{Digest, Sha256};

/// The region's nodes in the order `room` prefers them (highest weight first).
pub fn rank(room: &str, nodes: &[SocketAddr]) -> Vec<SocketAddr> {
    let weight = |node: &SocketAddr| {
        let mut h = Sha256::new();
        h.update(room.as_bytes());
        h.update([0]);
        h.update(node.to_string().as_bytes());
        let digest = h.finalize();
        u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 8 bytes"))
    };
    let mut ranked: Vec<(u64, SocketAddr)> = nodes.iter().map(|n| (weight(n), *n)).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.dedup_by_key(|(_, n)| *n);
    ranked.into_iter().map(|(_, n)| n).collect()
}

/// What a node said when asked about a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It has live sessions in the room.
    Hosting,
    /// It does not host the room and takes new ones.
    Free,
    /// It does not host the room and is draining: no new rooms.
    Draining,
    /// It did not answer (gone, or not started yet).
    Unreachable,
}

/// Where a request for a room goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This node.
    Here,
    /// Another node of the region.
    There(SocketAddr),
    /// No node can take the room now (all draining or unreachable).
    Nowhere,
}

/// Decides from the answers of the nodes, in rank order (this node included as `me`):
/// the node hosting the room if any, else the first that takes new rooms.
pub fn decide(me: SocketAddr, answers: &[(SocketAddr, Answer)]) -> Target {
    let target = |node: SocketAddr| {
        if node == me {
            Target::Here
        } else {
            Target::There(node)
        }
    };
    if let Some((node, _)) = answers.iter().find(|(_, a)| *a == Answer::Hosting) {
        return target(*node);
    }
    answers
        .iter()
        .find(|(_, a)| *a == Answer::Free)
        .map_or(Target::Nowhere, |(node, _)| target(*node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 244, 0, n], 8443))
    }

    #[test]
    fn every_node_ranks_a_room_alike_and_rooms_spread() {
        let nodes: Vec<SocketAddr> = (1..=4).map(node).collect();
        let mut reversed = nodes.clone();
        reversed.reverse();
        for room in ["visit-1", "visit-2", "ward-7"] {
            assert_eq!(
                rank(room, &nodes),
                rank(room, &reversed),
                "order of discovery does not matter"
            );
        }
        let firsts: std::collections::BTreeSet<SocketAddr> = (0..64)
            .map(|i| rank(&format!("room-{i}"), &nodes)[0])
            .collect();
        assert_eq!(firsts.len(), 4, "rooms spread over every node");
    }

    #[test]
    fn a_node_joining_moves_only_the_rooms_it_now_ranks_first() {
        let three: Vec<SocketAddr> = (1..=3).map(node).collect();
        let four: Vec<SocketAddr> = (1..=4).map(node).collect();
        for i in 0..100 {
            let room = format!("room-{i}");
            let before = rank(&room, &three)[0];
            let after = rank(&room, &four)[0];
            assert!(
                after == before || after == node(4),
                "{room} moved between old nodes"
            );
        }
    }

    #[test]
    fn an_existing_room_stays_where_it_is_and_a_new_one_goes_to_the_first_free_node() {
        let me = node(1);
        // The room lives on node 3, though node 2 would be first for a new room.
        let answers = [
            (node(2), Answer::Free),
            (me, Answer::Free),
            (node(3), Answer::Hosting),
        ];
        assert_eq!(decide(me, &answers), Target::There(node(3)));
        // A draining host keeps its room until it is empty.
        let answers = [
            (node(2), Answer::Free),
            (node(3), Answer::Draining),
            (me, Answer::Hosting),
        ];
        assert_eq!(decide(me, &answers), Target::Here);
        // No host: the first node that takes new rooms; draining and gone nodes are passed.
        let answers = [
            (node(2), Answer::Unreachable),
            (node(3), Answer::Draining),
            (me, Answer::Free),
        ];
        assert_eq!(decide(me, &answers), Target::Here);
        let answers = [(node(2), Answer::Unreachable), (me, Answer::Draining)];
        assert_eq!(decide(me, &answers), Target::Nowhere);
    }
}
