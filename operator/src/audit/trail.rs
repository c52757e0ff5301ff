//! Ships audit entries to the audit bucket in the background.
//!
//! Reconciles hand entries to [`Trail::record`] and go on; one task per process links
//! them into each tenant's chain and writes a batch per tenant every flush interval. A
//! write the store refuses stays queued and is retried on the next tick; a batch key
//! that already exists (another writer got there first) makes the task reload that
//! tenant's head and relink, so two operator processes never fork a chain. Entries still
//! queued when the process is killed are lost; `sanctum_audit_pending_records` and
//! `sanctum_audit_lag_seconds` show how much is at risk.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::store::{AuditStore, Put, key};
use super::{Entry, Head, link, to_json_lines};
use crate::metrics::Metrics;

/// Records per batch object at most; more wait for the next write.
const MAX_BATCH: usize = 500;

/// Handle the controllers record through; cheap to clone. Disabled when no audit bucket
/// is configured.
#[derive(Clone, Debug, Default)]
pub struct Trail {
    tx: Option<mpsc::UnboundedSender<Entry>>,
}

impl Trail {
    /// A trail that drops every entry (no audit bucket configured).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Starts the shipping task; it ends after every handle is dropped and the queue is
    /// written (or `store` refused it `attempts_on_close` times).
    pub fn start(store: AuditStore, metrics: Metrics, flush: Duration) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(ship(store, metrics, flush, rx));
        (Self { tx: Some(tx) }, task)
    }

    /// Queues an entry; never blocks a reconcile.
    pub fn record(&self, entry: Entry) {
        if let Some(tx) = &self.tx
            && tx.send(entry).is_err()
        {
            warn!("audit trail stopped; an audit entry was not recorded");
        }
    }
}

struct Queue {
    entries: Vec<Entry>,
    oldest: Option<Instant>,
}

async fn ship(
    store: AuditStore,
    metrics: Metrics,
    flush: Duration,
    mut rx: mpsc::UnboundedReceiver<Entry>,
) {
    let mut heads: BTreeMap<String, Head> = BTreeMap::new();
    let mut queues: BTreeMap<String, Queue> = BTreeMap::new();
    let mut tick = tokio::time::interval(flush);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    let mut closing_attempts = 0;
    loop {
        tokio::select! {
            entry = rx.recv(), if open => match entry {
                Some(entry) => {
                    let queue = queues.entry(entry.tenant.clone()).or_insert_with(|| Queue {
                        entries: Vec::new(),
                        oldest: None,
                    });
                    queue.oldest.get_or_insert_with(Instant::now);
                    queue.entries.push(entry);
                    metrics.audit_pending(queues.values().map(|q| q.entries.len()).sum());
                    continue;
                }
                None => open = false,
            },
            _ = tick.tick() => {}
        }
        for (tenant, queue) in queues.iter_mut() {
            while !queue.entries.is_empty() {
                let take = queue.entries.len().min(MAX_BATCH);
                match write_batch(&store, &mut heads, tenant, &queue.entries[..take]).await {
                    Ok(()) => {
                        queue.entries.drain(..take);
                        metrics.audit_shipped(take as u64);
                    }
                    Err(error) => {
                        metrics.audit_ship_failed();
                        warn!(%error, tenant, queued = queue.entries.len(), "could not write audit records; will retry");
                        break;
                    }
                }
            }
            if queue.entries.is_empty() {
                queue.oldest = None;
            }
        }
        queues.retain(|_, q| !q.entries.is_empty());
        let pending = queues.values().map(|q| q.entries.len()).sum();
        metrics.audit_pending(pending);
        let lag = queues
            .values()
            .filter_map(|q| q.oldest)
            .map(|t| t.elapsed().as_secs_f64())
            .fold(0.0, f64::max);
        metrics.audit_lag(lag);
        if !open {
            closing_attempts += 1;
            if pending == 0 || closing_attempts >= 5 {
                if pending > 0 {
                    warn!(pending, "audit records not written before shutdown");
                }
                return;
            }
        }
    }
}

/// Links `entries` after the tenant's head and writes them as one new object, reloading
/// the head from the store when unknown or when another writer took the key.
async fn write_batch(
    store: &AuditStore,
    heads: &mut BTreeMap<String, Head>,
    tenant: &str,
    entries: &[Entry],
) -> Result<(), crate::cloud::CloudError> {
    for _ in 0..5 {
        let head = match heads.get(tenant) {
            Some(head) => head.clone(),
            None => store.head(tenant).await?,
        };
        let (records, next) = link(entries, &head);
        let batch_key = key(tenant, head.seq + 1);
        match store.put_new(&batch_key, to_json_lines(&records)).await {
            Ok(Put::Written) => {
                debug!(key = %batch_key, records = records.len(), "audit records written");
                heads.insert(tenant.to_string(), next);
                return Ok(());
            }
            Ok(Put::Exists) => {
                debug!(key = %batch_key, "audit batch key taken by another writer; reloading the head");
                heads.remove(tenant);
            }
            Err(e) => {
                heads.remove(tenant);
                return Err(e);
            }
        }
    }
    Err(crate::cloud::CloudError::other(
        "PutObject",
        format!("audit chain of {tenant} kept moving under five attempts to append"),
    ))
}
