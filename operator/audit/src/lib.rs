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
mod verify;

pub use sanctum_cloud::CloudError;
pub use sign::{SignatureLine, Signer, Trust};
pub use verify::{
    Broken, Verified, check_anchor, check_signatures, node_trust, parse, split_signed, verify_chain,
};

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
