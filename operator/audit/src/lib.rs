//! The tamper-evident audit trail's records and hash chains, shared by the operator (one
//! chain of reconciles per tenant) and media nodes (one chain of session log lines per
//! node and tenant).
//!
//! Every entry becomes a [`Record`]: when, which writer, which object (kind, name, uid,
//! generation), what was done and how it ended, and the hash of the chain's previous
//! record. A record's own hash covers all of that, so changing, removing or reordering
//! any record breaks the chain at that point. Writers batch records into objects of a
//! bucket under S3 Object Lock (compliance mode), where not even the account root can
//! delete them before their retention ends; [`verify_chain`] walks a chain back.
//!
//! Records name objects and actions, never PHI (room and user ids are opaque) and never
//! key material.
//!
//! [`store`] reads and writes chains in the bucket, [`trail`] ships entries in the
//! background; both talk to S3 through the AWS SDK's client.

pub mod check;
pub mod sign;
pub mod store;
pub mod trail;

pub use sanctum_cloud::CloudError;
pub use sign::{SignatureLine, Signer, Trust};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev` of a tenant's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, before it is placed in a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Tenant whose chain the record joins.
    pub tenant: String,
    /// RFC 3339 time of the action.
    pub time: String,
    /// Controller (or component) that acted: `videotenant`, `recording`, `media-node`.
    pub controller: String,
    /// Kind of the object acted on.
    pub kind: String,
    /// Namespace of the object, for namespaced kinds.
    pub namespace: Option<String>,
    /// Name of the object.
    pub name: String,
    /// The object's uid, so a deleted and recreated object is told apart.
    pub uid: Option<String>,
    /// The object's `metadata.generation` the action answered.
    pub generation: Option<i64>,
    /// What was done (the same text as the Event's note).
    pub actions: String,
    /// How it ended: the Event reason (`Applied`, `Sealed`, an error category, ...).
    pub outcome: String,
}

/// One link of a tenant's chain, as stored (one JSON object per line).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// Tenant whose chain this is.
    pub tenant: String,
    /// Position in the chain, from 1 without gaps.
    pub seq: u64,
    /// RFC 3339 time of the action.
    pub time: String,
    /// Controller (or component) that acted.
    pub controller: String,
    /// Kind of the object acted on.
    pub kind: String,
    /// Namespace of the object, for namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the object.
    pub name: String,
    /// The object's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The object's generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// What was done.
    pub actions: String,
    /// How it ended.
    pub outcome: String,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev: String,
    /// SHA-256 (hex) of this record serialized with an empty `hash`.
    pub hash: String,
}

impl Record {
    /// The hash this record must carry: SHA-256 over its JSON with `hash` empty.
    pub fn digest(&self) -> String {
        let mut unsealed = self.clone();
        unsealed.hash.clear();
        let bytes = serde_json::to_vec(&unsealed).expect("a record serializes to JSON");
        hex::encode(Sha256::digest(&bytes))
    }
}

/// Where a tenant's chain ends: the next record links here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the last record (0 when the chain is empty).
    pub seq: u64,
    /// Hash of the last record ([`GENESIS`] when empty).
    pub hash: String,
}

impl Default for Head {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

/// Appends `entries` after `head`: numbers, links and seals each one.
pub fn link(entries: &[Entry], head: &Head) -> (Vec<Record>, Head) {
    let mut head = head.clone();
    let records = entries
        .iter()
        .map(|e| {
            let mut record = Record {
                tenant: e.tenant.clone(),
                seq: head.seq + 1,
                time: e.time.clone(),
                controller: e.controller.clone(),
                kind: e.kind.clone(),
                namespace: e.namespace.clone(),
                name: e.name.clone(),
                uid: e.uid.clone(),
                generation: e.generation,
                actions: e.actions.clone(),
                outcome: e.outcome.clone(),
                prev: head.hash.clone(),
                hash: String::new(),
            };
            record.hash = record.digest();
            head = Head {
                seq: record.seq,
                hash: record.hash.clone(),
            };
            record
        })
        .collect();
    (records, head)
}

/// Which of a tenant's chains: the operator's reconciles, or one media node's session log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain<'a> {
    /// Reconciles of the tenant and its Recordings, written by the operator.
    Reconciles,
    /// The session log of one media node (its pod name), written by that node.
    Node(&'a str),
}

/// Where a chain's batches live in the audit bucket: `tenants/<tenant>/` for reconciles,
/// `tenants/<tenant>/nodes/<node>/` for a node's sessions.
pub fn chain_prefix(tenant: &str, chain: Chain<'_>) -> String {
    match chain {
        Chain::Reconciles => format!("tenants/{tenant}/"),
        Chain::Node(node) => format!("tenants/{tenant}/{NODES}/{node}/"),
    }
}

/// Folder under a tenant's prefix holding the media nodes' chains.
pub const NODES: &str = "nodes";

/// Key of the batch of the chain at `prefix` whose first record is `first_seq`.
pub fn batch_key(prefix: &str, first_seq: u64) -> String {
    format!("{prefix}{first_seq:020}.jsonl")
}

/// First sequence number named by a batch key directly under `prefix`, if it is one.
pub fn first_seq(prefix: &str, key: &str) -> Option<u64> {
    let name = key.strip_prefix(prefix)?;
    if name.contains('/') {
        return None;
    }
    name.strip_suffix(".jsonl")?.parse().ok()
}

/// One stored batch: its object key, the sequence number in its key, and its text.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Object key in the audit bucket.
    pub key: String,
    /// The first sequence number the key names.
    pub first_seq: u64,
    /// JSON lines.
    pub body: String,
}

/// The first place a chain stops holding together.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// A line that is not a record (edited by hand, truncated, or not ours).
    #[error("{key} line {line} is not an audit record ({reason}): the object was changed")]
    Unreadable {
        /// Object key.
        key: String,
        /// 1-based line number.
        line: usize,
        /// What the parser said.
        reason: String,
    },
    /// A record whose content no longer matches its hash.
    #[error("record {seq} in {key} does not match its hash: the record was changed")]
    Changed {
        /// Object key.
        key: String,
        /// The record's (claimed) sequence number.
        seq: u64,
    },
    /// Records absent from the chain.
    #[error("records {expected}..={} are missing: {key} continues with record {found}", found - 1)]
    Missing {
        /// Object key where the gap shows.
        key: String,
        /// First absent sequence number.
        expected: u64,
        /// Sequence number found instead.
        found: u64,
    },
    /// Records out of order.
    #[error(
        "record {found} in {key} stands where record {expected} belongs: records were reordered"
    )]
    Reordered {
        /// Object key.
        key: String,
        /// Sequence number that belongs here.
        expected: u64,
        /// Sequence number found.
        found: u64,
    },
    /// A record that does not point at its predecessor.
    #[error("record {seq} in {key} does not link to record {}: the chain was changed", seq - 1)]
    Unlinked {
        /// Object key.
        key: String,
        /// The record's sequence number.
        seq: u64,
    },
    /// An object whose name does not match its first record.
    #[error(
        "{key} is named for record {named} but starts with record {found}: objects were renamed or replaced"
    )]
    Misplaced {
        /// Object key.
        key: String,
        /// Sequence number in the key.
        named: u64,
        /// First record's sequence number.
        found: u64,
    },
    /// No record at all: a tenant name that never had a chain, or every object removed.
    #[error(
        "no audit records for tenant {tenant}: wrong tenant name, or the chain's objects were removed"
    )]
    Empty {
        /// The tenant being verified.
        tenant: String,
    },
    /// A batch without a signature line.
    #[error("{key} is not signed: it was not written by a Sanctum writer")]
    Unsigned {
        /// Object key.
        key: String,
    },
    /// A batch whose signature does not hold.
    #[error("{key} is {problem}: it was written or changed by someone without the writer's key")]
    BadSignature {
        /// Object key.
        key: String,
        /// What is wrong with it.
        problem: sign::SignatureProblem,
    },
    /// A media node's chain that does not start by stating its signing key.
    #[error(
        "{key} does not start with the node's signing key (an AuditKey record): the chain was not started by a media node"
    )]
    NoNodeKey {
        /// Object key of the chain's first batch.
        key: String,
    },
    /// The anchored record (kept outside the bucket) is not in the chain as anchored.
    #[error(
        "the chain does not hold record {seq} with hash {hash} (status.lastAuditRecord): it was truncated or rewritten"
    )]
    AnchorMissing {
        /// Anchored sequence number.
        seq: u64,
        /// Anchored hash.
        hash: String,
    },
    /// A record of another tenant.
    #[error("record {seq} in {key} belongs to tenant {found}, not {tenant}")]
    WrongTenant {
        /// Object key.
        key: String,
        /// The record's sequence number.
        seq: u64,
        /// The tenant being verified.
        tenant: String,
        /// The tenant the record names.
        found: String,
    },
}

/// What a successful verification saw.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Objects read.
    pub objects: usize,
    /// The chain's end; its `seq` is the number of records checked.
    pub head: Head,
    /// The records, in chain order (for an export, without parsing the batches again).
    pub records: Vec<Record>,
}

/// Splits a stored batch into its records' text and its signature line, if it ends with
/// one (the signature covers exactly that text).
pub fn split_signed(body: &str) -> (&str, Option<SignatureLine>) {
    let trimmed = body.strip_suffix('\n').unwrap_or(body);
    let (records, last) = match trimmed.rfind('\n') {
        Some(i) => (&body[..=i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    match SignatureLine::parse(last) {
        Some(signature) => (records, Some(signature)),
        None => (body, None),
    }
}

/// Parses every batch into records (in key order), refusing unreadable lines. A batch's
/// closing signature line is not a record (see [`check_signatures`]).
pub fn parse(batches: &[Batch]) -> Result<Vec<(String, Record)>, Broken> {
    let mut out = Vec::new();
    for batch in batches {
        let (records, _) = split_signed(&batch.body);
        for (i, line) in records.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record: Record = serde_json::from_str(line).map_err(|e| Broken::Unreadable {
                key: batch.key.clone(),
                line: i + 1,
                reason: e.to_string(),
            })?;
            out.push((batch.key.clone(), record));
        }
    }
    Ok(out)
}

/// Walks `tenant`'s batches (sorted by key) and reports the first changed, missing,
/// reordered or misplaced record.
pub fn verify_chain(tenant: &str, batches: &[Batch]) -> Result<Verified, Broken> {
    let records = parse(batches)?;
    if records.is_empty() {
        return Err(Broken::Empty {
            tenant: tenant.to_string(),
        });
    }
    // An object must hold the record its name starts with; records moved into an
    // object ahead of it, or swapped inside one, are left to the walk below, which names
    // them as reordered.
    for batch in batches {
        let lowest = records
            .iter()
            .filter(|(k, _)| *k == batch.key)
            .map(|(_, r)| r.seq)
            .min();
        if let Some(lowest) = lowest
            && lowest > batch.first_seq
        {
            return Err(Broken::Misplaced {
                key: batch.key.clone(),
                named: batch.first_seq,
                found: lowest,
            });
        }
    }
    let mut head = Head::default();
    for (i, (key, record)) in records.iter().enumerate() {
        let expected = head.seq + 1;
        if record.digest() != record.hash {
            return Err(Broken::Changed {
                key: key.clone(),
                seq: record.seq,
            });
        }
        if record.seq != expected {
            let later = records[i + 1..].iter().any(|(_, r)| r.seq == expected);
            return Err(if later || record.seq < expected {
                Broken::Reordered {
                    key: key.clone(),
                    expected,
                    found: record.seq,
                }
            } else {
                Broken::Missing {
                    key: key.clone(),
                    expected,
                    found: record.seq,
                }
            });
        }
        if record.prev != head.hash {
            return Err(Broken::Unlinked {
                key: key.clone(),
                seq: record.seq,
            });
        }
        if record.tenant != tenant {
            return Err(Broken::WrongTenant {
                key: key.clone(),
                seq: record.seq,
                tenant: tenant.to_string(),
                found: record.tenant.clone(),
            });
        }
        head = Head {
            seq: record.seq,
            hash: record.hash.clone(),
        };
    }
    Ok(Verified {
        objects: batches.len(),
        head,
        records: records.into_iter().map(|(_, r)| r).collect(),
    })
}

/// Checks that every batch ends with a signature, by a key of `trust`, over its object key
/// and its records.
pub fn check_signatures(batches: &[Batch], trust: &Trust) -> Result<(), Broken> {
    for batch in batches {
        let (records, signature) = split_signed(&batch.body);
        let signature = signature.ok_or_else(|| Broken::Unsigned {
            key: batch.key.clone(),
        })?;
        trust
            .check(&batch.key, records, &signature.signature)
            .map_err(|problem| Broken::BadSignature {
                key: batch.key.clone(),
                problem,
            })?;
    }
    Ok(())
}

/// `kind` of the record that opens a media node's chain, stating the node's public key.
pub const AUDIT_KEY_KIND: &str = "AuditKey";

/// The entry a media node's chain starts with: the public key its batches are signed with.
pub fn audit_key_entry(tenant: &str, time: &str, signer: &Signer) -> Entry {
    Entry {
        tenant: tenant.to_string(),
        time: time.to_string(),
        controller: "media-node".into(),
        kind: AUDIT_KEY_KIND.into(),
        namespace: None,
        name: signer.id().to_string(),
        uid: None,
        generation: None,
        actions: format!("ed25519 {}", signer.public_hex()),
        outcome: "key".into(),
    }
}

/// The key a media node's chain is signed with: the one its first record states.
pub fn node_trust(batches: &[Batch]) -> Result<Trust, Broken> {
    let first = batches.first().ok_or_else(|| Broken::Empty {
        tenant: String::new(),
    })?;
    let no_key = || Broken::NoNodeKey {
        key: first.key.clone(),
    };
    let records = parse(std::slice::from_ref(first))?;
    let (_, record) = records.first().ok_or_else(no_key)?;
    if record.seq != 1 || record.kind != AUDIT_KEY_KIND {
        return Err(no_key());
    }
    let public = record.actions.strip_prefix("ed25519 ").ok_or_else(no_key)?;
    Trust::from_hex(public).map_err(|_| no_key())
}

/// Checks that the chain holds the anchored record; returns how many records follow it
/// (written after the anchor was last updated).
pub fn check_anchor(verified: &Verified, anchor: &Head) -> Result<u64, Broken> {
    let held = verified
        .records
        .iter()
        .any(|r| r.seq == anchor.seq && r.hash == anchor.hash);
    if !held {
        return Err(Broken::AnchorMissing {
            seq: anchor.seq,
            hash: anchor.hash.clone(),
        });
    }
    Ok(verified.head.seq.saturating_sub(anchor.seq))
}

/// A batch as stored: its records as JSON lines, then the signature line over them.
pub fn signed_body(object_key: &str, records: &[Record], signer: &Signer) -> String {
    let mut body = to_json_lines(records);
    let signature = signer.sign(object_key, &body);
    body.push_str(&signature.to_line());
    body.push('\n');
    body
}

/// Serializes records as JSON lines, the stored form of a batch.
pub fn to_json_lines(records: &[Record]) -> String {
    let mut body = String::new();
    for r in records {
        body.push_str(&serde_json::to_string(r).expect("a record serializes to JSON"));
        body.push('\n');
    }
    body
}

/// Fixtures of the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Entry;

    /// The `n`th reconcile of tenant `clinic-a`.
    pub(crate) fn entry(n: u32) -> Entry {
        Entry {
            tenant: "clinic-a".into(),
            time: format!("2026-11-25T00:00:{n:02}Z"),
            controller: "videotenant".into(),
            kind: "VideoTenant".into(),
            namespace: None,
            name: "clinic-a".into(),
            uid: Some("uid-1".into()),
            generation: Some(1),
            actions: format!("applied Deployment/media-{n}"),
            outcome: "Applied".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::entry;
    use super::*;

    /// Three batches of two records each, keyed like the store keys them.
    fn chain() -> Vec<Batch> {
        let mut head = Head::default();
        (0..3)
            .map(|b| {
                let (records, next) = link(&[entry(2 * b), entry(2 * b + 1)], &head);
                let batch = Batch {
                    key: batch_key(&chain_prefix("clinic-a", Chain::Reconciles), head.seq + 1),
                    first_seq: head.seq + 1,
                    body: to_json_lines(&records),
                };
                head = next;
                batch
            })
            .collect()
    }

    fn lines(batch: &Batch) -> Vec<String> {
        batch.body.lines().map(str::to_string).collect()
    }

    #[test]
    fn an_intact_chain_verifies_to_its_head() {
        let batches = chain();
        let v = verify_chain("clinic-a", &batches).expect("intact");
        assert_eq!(v.head.seq, 6);
        assert_eq!(v.objects, 3);
        let last = parse(&batches).expect("readable").pop().expect("records").1;
        assert_eq!(v.head.hash, last.hash);
        assert_eq!(last.prev.len(), 64);
    }

    #[test]
    fn an_edited_record_is_reported_as_changed() {
        let mut batches = chain();
        batches[1].body = batches[1].body.replace("media-3", "media-9");
        assert_eq!(
            verify_chain("clinic-a", &batches),
            Err(Broken::Changed {
                key: batches[1].key.clone(),
                seq: 4
            })
        );
    }

    #[test]
    fn a_resealed_edit_breaks_the_link_of_the_next_record() {
        // Someone who edits a record and recomputes its hash still breaks the chain.
        let mut batches = chain();
        let mut l = lines(&batches[1]);
        let mut r: Record = serde_json::from_str(&l[0]).expect("a record");
        r.outcome = "Nothing happened".into();
        r.hash = r.digest();
        l[0] = serde_json::to_string(&r).expect("serializes");
        batches[1].body = l.join("\n");
        assert_eq!(
            verify_chain("clinic-a", &batches),
            Err(Broken::Unlinked {
                key: batches[1].key.clone(),
                seq: 4
            })
        );
    }

    #[test]
    fn a_deleted_record_or_object_is_reported_missing() {
        let mut batches = chain();
        let l = lines(&batches[1]);
        batches[1].body = l[1].clone();
        assert!(matches!(
            verify_chain("clinic-a", &batches),
            Err(Broken::Misplaced {
                named: 3,
                found: 4,
                ..
            })
        ));

        let mut batches = chain();
        batches.remove(1);
        assert_eq!(
            verify_chain("clinic-a", &batches),
            Err(Broken::Missing {
                key: batches[1].key.clone(),
                expected: 3,
                found: 5
            })
        );
        assert_eq!(
            verify_chain("clinic-a", &batches)
                .expect_err("broken")
                .to_string(),
            format!(
                "records 3..=4 are missing: {} continues with record 5",
                batches[1].key
            )
        );
    }

    #[test]
    fn swapped_records_are_reported_reordered() {
        let mut batches = chain();
        let l = lines(&batches[2]);
        batches[2].body = format!("{}\n{}\n", l[1], l[0]);
        assert_eq!(
            verify_chain("clinic-a", &batches),
            Err(Broken::Reordered {
                key: batches[2].key.clone(),
                expected: 5,
                found: 6
            })
        );
        // Whole objects swapped: each name now holds another object's records.
        let mut batches = chain();
        let first = batches[0].body.clone();
        batches[0].body = std::mem::replace(&mut batches[1].body, first);
        assert!(matches!(
            verify_chain("clinic-a", &batches),
            Err(Broken::Misplaced {
                named: 1,
                found: 3,
                ..
            })
        ));
        // Across objects, with names kept: record 4 moved behind record 5.
        let mut batches = chain();
        let b1 = lines(&batches[1]);
        let b2 = lines(&batches[2]);
        batches[1].body = format!("{}\n", b1[0]);
        batches[2].body = format!("{}\n{}\n{}\n", b2[0], b1[1], b2[1]);
        assert_eq!(
            verify_chain("clinic-a", &batches),
            Err(Broken::Reordered {
                key: batches[2].key.clone(),
                expected: 4,
                found: 5
            })
        );
    }

    #[test]
    fn garbage_and_unknown_fields_are_unreadable() {
        let mut batches = chain();
        batches[0].body = batches[0]
            .body
            .replacen("\"tenant\"", "\"extra\":1,\"tenant\"", 1);
        assert!(matches!(
            verify_chain("clinic-a", &batches),
            Err(Broken::Unreadable { line: 1, .. })
        ));
    }

    #[test]
    fn an_empty_chain_is_not_intact() {
        assert!(matches!(
            verify_chain("clinic-a", &[]),
            Err(Broken::Empty { .. })
        ));
    }

    #[test]
    fn another_tenants_chain_is_refused() {
        assert!(matches!(
            verify_chain("clinic-b", &chain()),
            Err(Broken::WrongTenant { seq: 1, .. })
        ));
    }
}
