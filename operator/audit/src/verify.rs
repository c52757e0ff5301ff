//! Verifying a chain's batches: every record's hash and link, the order of records and
//! objects, the batches' signatures, a node chain's own key, and the anchor.

use crate::{AUDIT_KEY_KIND, Batch, Head, Record, SignatureLine, Trust, sign};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::entry;
    use crate::{Chain, Head, batch_key, chain_prefix, link, to_json_lines};

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
