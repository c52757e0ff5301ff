//! Verifying a tenant's whole audit trail as it stands in the bucket: the operator's chain
//! of reconciles and every media node's chain of sessions, their signatures, the anchor
//! kept outside the bucket, and the bucket's version history (nothing hidden behind a
//! delete marker, nothing written twice).
//!
//! [`gather`] reads; [`judge`] decides, without I/O, so every verdict is unit-tested.

use crate::store::AuditStore;
use crate::{
    Batch, Broken, Chain, CloudError, Head, Record, Trust, Verified, chain_prefix, check_anchor,
    check_signatures, node_trust, verify_chain,
};

/// Type of results of a trail check.
pub type Result<T, E = TrailError> = std::result::Result<T, E>;

/// Everything read from the bucket for one tenant.
#[derive(Clone, Debug, Default)]
pub struct Gathered {
    /// The reconcile chain's batches.
    pub reconciles: Vec<Batch>,
    /// Each media node chain (by name) and its batches.
    pub nodes: Vec<(String, Vec<Batch>)>,
    /// Keys under the tenant whose current version is a delete marker.
    pub deleted: Vec<String>,
    /// Keys under the tenant with more than one version, and how many.
    pub overwritten: Vec<(String, usize)>,
}

/// Why a trail does not verify.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    /// The bucket could not be read.
    #[error("reading the audit chain of {tenant} ({chain}): {source}")]
    Read {
        /// Tenant.
        tenant: String,
        /// Which chain, or `versions`.
        chain: String,
        /// Why.
        source: CloudError,
    },
    /// A chain is broken.
    #[error("audit chain of {tenant} ({chain}) is broken: {broken}")]
    Broken {
        /// Tenant.
        tenant: String,
        /// Which chain.
        chain: String,
        /// Where it breaks.
        broken: Box<Broken>,
    },
    /// Objects hidden behind delete markers.
    #[error(
        "audit trail of {tenant} is broken: {key} was deleted ({count} object(s) hidden by delete markers; their locked versions remain, remove the markers to restore them)"
    )]
    Deleted {
        /// Tenant.
        tenant: String,
        /// The first such key.
        key: String,
        /// How many.
        count: usize,
    },
    /// Objects written more than once.
    #[error(
        "audit trail of {tenant} is broken: {key} has {versions} versions, but audit objects are written once, so it was overwritten ({count} object(s) overwritten; Object Lock keeps every version, list them with ListObjectVersions)"
    )]
    Overwritten {
        /// Tenant.
        tenant: String,
        /// The first such key.
        key: String,
        /// Its versions.
        versions: usize,
        /// How many keys.
        count: usize,
    },
}

/// One verified chain.
#[derive(Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// `reconciles`, or `sessions of media node <name>`.
    pub name: String,
    /// Objects read.
    pub objects: usize,
    /// Where it ends.
    pub head: Head,
}

/// A trail that verified.
#[derive(Debug, PartialEq, Eq)]
pub struct TrailReport {
    /// Each chain, reconciles first.
    pub chains: Vec<ChainReport>,
    /// Every record of every chain (reconciles first, then each node's).
    pub records: Vec<Record>,
    /// Records of the reconcile chain written after the anchor, when one was given.
    pub after_anchor: Option<u64>,
}

/// Reads `tenant`'s chains and the version history under its prefix.
pub async fn gather(store: &AuditStore, tenant: &str) -> Result<Gathered> {
    let read = |chain: &str| {
        let (tenant, chain) = (tenant.to_string(), chain.to_string());
        move |source| TrailError::Read {
            tenant,
            chain,
            source,
        }
    };
    let prefix = chain_prefix(tenant, Chain::Reconciles);
    let reconciles = store.chain(&prefix).await.map_err(read("reconciles"))?;
    let mut nodes = Vec::new();
    for node in store.nodes(tenant).await.map_err(read("media nodes"))? {
        let batches = store
            .chain(&chain_prefix(tenant, Chain::Node(&node)))
            .await
            .map_err(read(&node))?;
        nodes.push((node, batches));
    }
    Ok(Gathered {
        reconciles,
        nodes,
        deleted: store.deleted(&prefix).await.map_err(read("versions"))?,
        overwritten: store.overwritten(&prefix).await.map_err(read("versions"))?,
    })
}

/// Decides whether what was read is an intact trail: each chain links and hashes
/// correctly; the reconcile chain is signed by a key of `signers` and holds `anchor`; each
/// node chain is signed by the key its first record states; nothing was deleted or
/// overwritten. Chain content is judged first, so broken content is named by what broke.
pub fn judge(
    tenant: &str,
    gathered: &Gathered,
    signers: &Trust,
    anchor: Option<&Head>,
) -> Result<TrailReport> {
    let broken = |chain: &str| {
        let (tenant, chain) = (tenant.to_string(), chain.to_string());
        move |broken| TrailError::Broken {
            tenant,
            chain,
            broken: Box::new(broken),
        }
    };
    let mut chains = Vec::new();
    let mut records = Vec::new();
    let reconciles = "reconciles";
    let verified: Verified =
        verify_chain(tenant, &gathered.reconciles).map_err(broken(reconciles))?;
    check_signatures(&gathered.reconciles, signers).map_err(broken(reconciles))?;
    let after_anchor = anchor
        .map(|a| check_anchor(&verified, a))
        .transpose()
        .map_err(broken(reconciles))?;
    chains.push(ChainReport {
        name: reconciles.into(),
        objects: verified.objects,
        head: verified.head,
    });
    records.extend(verified.records);
    for (node, batches) in &gathered.nodes {
        let name = format!("sessions of media node {node}");
        let verified = verify_chain(tenant, batches).map_err(broken(&name))?;
        let own = node_trust(batches).map_err(broken(&name))?;
        check_signatures(batches, &own).map_err(broken(&name))?;
        chains.push(ChainReport {
            name,
            objects: verified.objects,
            head: verified.head,
        });
        records.extend(verified.records);
    }
    if let Some(key) = gathered.deleted.first() {
        return Err(TrailError::Deleted {
            tenant: tenant.into(),
            key: key.clone(),
            count: gathered.deleted.len(),
        });
    }
    if let Some((key, versions)) = gathered.overwritten.first() {
        return Err(TrailError::Overwritten {
            tenant: tenant.into(),
            key: key.clone(),
            versions: *versions,
            count: gathered.overwritten.len(),
        });
    }
    Ok(TrailReport {
        chains,
        records,
        after_anchor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::entry;
    use crate::{Entry, Signer, audit_key_entry, batch_key, link, signed_body};

    /// A chain at `prefix` of `batches` batches of two entries each (after `first`, if
    /// given, as record 1), signed by `signer`.
    fn chain(prefix: &str, first: Option<Entry>, batches: u32, signer: &Signer) -> Vec<Batch> {
        let mut head = Head::default();
        let mut out = Vec::new();
        let mut groups: Vec<Vec<Entry>> = (0..batches)
            .map(|b| vec![entry(2 * b), entry(2 * b + 1)])
            .collect();
        if let Some(first) = first {
            groups[0].insert(0, first);
        }
        for group in groups {
            let (records, next) = link(&group, &head);
            let key = batch_key(prefix, head.seq + 1);
            out.push(Batch {
                body: signed_body(&key, &records, signer),
                first_seq: head.seq + 1,
                key,
            });
            head = next;
        }
        out
    }

    struct Fixture {
        operator: Signer,
        node: Signer,
        gathered: Gathered,
    }

    fn fixture() -> Fixture {
        let operator = Signer::generate().expect("key");
        let node = Signer::generate().expect("key");
        let node_name = format!("media-us-east-1.{}", node.id());
        let gathered = Gathered {
            reconciles: chain(
                &chain_prefix("clinic-a", Chain::Reconciles),
                None,
                3,
                &operator,
            ),
            nodes: vec![(
                node_name.clone(),
                chain(
                    &chain_prefix("clinic-a", Chain::Node(&node_name)),
                    Some(audit_key_entry("clinic-a", "2026-11-25T00:00:00Z", &node)),
                    2,
                    &node,
                ),
            )],
            ..Default::default()
        };
        Fixture {
            operator,
            node,
            gathered,
        }
    }

    fn trust(signer: &Signer) -> Trust {
        Trust::from_pems(&signer.public_pem()).expect("pem")
    }

    fn broken(result: Result<TrailReport>) -> String {
        result.expect_err("the trail must not verify").to_string()
    }

    #[test]
    fn an_intact_signed_trail_verifies_with_its_anchor() {
        let f = fixture();
        let anchor = Head {
            seq: 4,
            hash: f.gathered.reconciles[1]
                .body
                .lines()
                .nth(1)
                .map(|l| serde_json::from_str::<Record>(l).expect("record").hash)
                .expect("record 4"),
        };
        let report =
            judge("clinic-a", &f.gathered, &trust(&f.operator), Some(&anchor)).expect("intact");
        assert_eq!(report.chains.len(), 2);
        assert_eq!(report.chains[0].head.seq, 6);
        assert_eq!(
            report.chains[1].head.seq, 5,
            "the key record and four sessions"
        );
        assert_eq!(report.after_anchor, Some(2));
        assert_eq!(report.records.len(), 11);
        let _ = f.node;
    }

    #[test]
    fn a_batch_appended_with_bucket_access_alone_is_found() {
        let mut f = fixture();
        // Someone with the writers' cloud credentials but not the key appends a batch
        // that links perfectly, signed with a key of their own, or not at all.
        let prefix = chain_prefix("clinic-a", Chain::Reconciles);
        let head = Head {
            seq: 6,
            hash: serde_json::from_str::<Record>(
                f.gathered.reconciles[2]
                    .body
                    .lines()
                    .nth(1)
                    .expect("record 6"),
            )
            .expect("record")
            .hash,
        };
        let (records, _) = link(&[entry(40)], &head);
        let key = batch_key(&prefix, 7);
        let forger = Signer::generate().expect("key");
        f.gathered.reconciles.push(Batch {
            body: signed_body(&key, &records, &forger),
            first_seq: 7,
            key: key.clone(),
        });
        let text = broken(judge("clinic-a", &f.gathered, &trust(&f.operator), None));
        assert!(
            text.contains(&format!(
                "{key} is signed by key {}, which is not trusted",
                forger.id()
            )),
            "{text}"
        );
        f.gathered.reconciles.last_mut().expect("batch").body = crate::to_json_lines(&records);
        let text = broken(judge("clinic-a", &f.gathered, &trust(&f.operator), None));
        assert!(text.contains(&format!("{key} is not signed")), "{text}");
    }

    #[test]
    fn another_node_cannot_add_to_a_nodes_chain() {
        let mut f = fixture();
        let (name, batches) = f.gathered.nodes[0].clone();
        let prefix = chain_prefix("clinic-a", Chain::Node(&name));
        let last: Record = serde_json::from_str(
            crate::split_signed(&batches[1].body)
                .0
                .lines()
                .last()
                .expect("record"),
        )
        .expect("record");
        let (records, _) = link(
            &[entry(50)],
            &Head {
                seq: last.seq,
                hash: last.hash,
            },
        );
        let key = batch_key(&prefix, last.seq + 1);
        let other_node = Signer::generate().expect("key");
        f.gathered.nodes[0].1.push(Batch {
            body: signed_body(&key, &records, &other_node),
            first_seq: last.seq + 1,
            key,
        });
        let text = broken(judge("clinic-a", &f.gathered, &trust(&f.operator), None));
        assert!(
            text.contains(&format!("sessions of media node {name}")),
            "{text}"
        );
        assert!(text.contains("which is not trusted"), "{text}");
        // A node chain must begin with its key: one that does not was not started by a node.
        let mut f = fixture();
        let name = f.gathered.nodes[0].0.clone();
        f.gathered.nodes[0].1 = chain(
            &chain_prefix("clinic-a", Chain::Node(&name)),
            None,
            1,
            &f.node,
        );
        let text = broken(judge("clinic-a", &f.gathered, &trust(&f.operator), None));
        assert!(
            text.contains("does not start with the node's signing key"),
            "{text}"
        );
    }

    #[test]
    fn a_chain_cut_behind_its_anchor_is_found() {
        let mut f = fixture();
        let last_hash = |b: &Batch| {
            serde_json::from_str::<Record>(
                crate::split_signed(&b.body).0.lines().last().expect("r"),
            )
            .expect("record")
            .hash
        };
        let anchor = Head {
            seq: 6,
            hash: last_hash(&f.gathered.reconciles[2]),
        };
        f.gathered.reconciles.pop();
        let text = broken(judge(
            "clinic-a",
            &f.gathered,
            &trust(&f.operator),
            Some(&anchor),
        ));
        assert!(
            text.contains("does not hold record 6") && text.contains("truncated or rewritten"),
            "{text}"
        );
    }

    #[test]
    fn content_is_judged_before_the_version_history() {
        let mut f = fixture();
        f.gathered.overwritten = vec![("tenants/clinic-a/00000000000000000001.jsonl".into(), 2)];
        f.gathered.deleted = vec!["tenants/clinic-a/00000000000000000003.jsonl".into()];
        let text = broken(judge("clinic-a", &f.gathered, &trust(&f.operator), None));
        assert!(
            text.contains("00000000000000000003.jsonl was deleted (1 object(s)"),
            "{text}"
        );
        f.gathered.deleted.clear();
        let text = broken(judge("clinic-a", &f.gathered, &trust(&f.operator), None));
        assert!(
            text.contains("has 2 versions, but audit objects are written once"),
            "{text}"
        );
        let edited = f.gathered.reconciles[0]
            .body
            .replacen("Applied", "Nothing", 1);
        f.gathered.reconciles[0].body = edited;
        let text = broken(judge("clinic-a", &f.gathered, &trust(&f.operator), None));
        assert!(
            text.contains("record 1 in") && text.contains("does not match its hash"),
            "{text}"
        );
    }
}
