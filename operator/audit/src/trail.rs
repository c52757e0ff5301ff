//! Ships audit entries to the audit bucket in the background.
//!
//! Writers (reconciles, a media node's session log) hand entries to [`Trail::record`] and
//! go on; one task per process links them into their chain and writes a batch per chain
//! every flush interval. A write the store refuses stays queued and is retried on the
//! next tick; a batch key that already exists (another writer got there first) makes the
//! task reload that chain's head and relink, so two processes never fork a chain. Entries
//! still queued when the process is killed are lost; the [`Meter`] says how many are at
//! risk and for how long.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::store::{AuditStore, Put};
use crate::{Chain, CloudError, Entry, Head, Signer, batch_key, chain_prefix, link, signed_body};

/// Where a process reports how shipping goes (its Prometheus metrics).
pub trait Meter: Send + Sync + 'static {
    /// Records written to the store.
    fn shipped(&self, records: u64);
    /// A write the store refused (retried).
    fn ship_failed(&self);
    /// Records queued and not yet written.
    fn pending(&self, records: usize);
    /// Age of the oldest unwritten record.
    fn lag(&self, seconds: f64);
    /// After a flush that left `tenant`'s records unwritten (the store refused them): how
    /// long the oldest has waited; `0.0` once they are written after all.
    fn chain_lag(&self, _tenant: &str, _seconds: f64) {}
    /// Entries dropped because the queue was full.
    fn dropped(&self, records: u64);
    /// `tenant`'s chain now ends at `head` in the store (what an anchor may name).
    fn written(&self, _tenant: &str, _head: &Head) {}
}

/// Whose chains a trail writes: the operator's reconcile chains, or one media node's
/// session chains (one per tenant it serves).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writer {
    /// The operator: `tenants/<tenant>/`.
    Operator,
    /// A media node, by pod name: `tenants/<tenant>/nodes/<node>/`.
    Node(String),
}

impl Writer {
    fn prefix(&self, tenant: &str) -> String {
        match self {
            Writer::Operator => chain_prefix(tenant, Chain::Reconciles),
            Writer::Node(node) => chain_prefix(tenant, Chain::Node(node)),
        }
    }
}

/// Records per batch object at most; more wait for the next write.
const MAX_BATCH: usize = 500;
/// Entries handed over and not yet taken by the shipping task, at most.
const CHANNEL: usize = 10_000;
/// Entries waiting for the store, at most, over all chains: beyond it new entries are
/// dropped and counted, so a store that refuses writes (or a flood of refused requests at
/// a media node) cannot grow the process until it is killed and loses everything.
const MAX_PENDING: usize = 100_000;

/// Handle the controllers record through; cheap to clone. Disabled when no audit bucket
/// is configured.
#[derive(Clone, Debug, Default)]
pub struct Trail {
    tx: Option<mpsc::Sender<Entry>>,
    dropped: Arc<AtomicU64>,
}

impl Trail {
    /// A trail that drops every entry (no audit bucket configured).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the shipping task; it ends after every handle is dropped and the queue is
    /// written (or the store refused it five times in a row).
    pub fn start(
        store: AuditStore,
        writer: Writer,
        signer: Signer,
        metrics: impl Meter,
        flush: Duration,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let dropped = Arc::new(AtomicU64::new(0));
        let shipper = Shipper {
            store,
            writer,
            signer,
        };
        let task = tokio::spawn(ship(shipper, metrics, flush, rx, dropped.clone()));
        (
            Self {
                tx: Some(tx),
                dropped,
            },
            task,
        )
    }

    /// Queues an entry; never blocks the caller. A full queue drops it and counts it.
    pub fn record(&self, entry: Entry) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(entry) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                warn!("audit trail stopped; an audit entry was not recorded");
            }
        }
    }
}

struct Queue {
    tenant: String,
    entries: Vec<Entry>,
    oldest: Option<Instant>,
    /// A flush left entries behind; reported as caught up once they are written.
    behind: bool,
}

/// What the shipping task writes with.
struct Shipper {
    store: AuditStore,
    writer: Writer,
    signer: Signer,
}

async fn ship(
    shipper: Shipper,
    metrics: impl Meter,
    flush: Duration,
    mut rx: mpsc::Receiver<Entry>,
    dropped: Arc<AtomicU64>,
) {
    let mut heads: BTreeMap<String, Head> = BTreeMap::new();
    let mut queues: BTreeMap<String, Queue> = BTreeMap::new();
    let mut tick = tokio::time::interval(flush);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    let mut closing_attempts = 0;
    // Entries in `queues`: kept as entries arrive, recounted after each flush.
    let mut pending = 0;
    loop {
        tokio::select! {
            entry = rx.recv(), if open => match entry {
                Some(_) if pending >= MAX_PENDING => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Some(entry) => {
                    let queue = queues.entry(shipper.writer.prefix(&entry.tenant)).or_insert_with(|| Queue {
                        tenant: entry.tenant.clone(),
                        entries: Vec::new(),
                        oldest: None,
                        behind: false,
                    });
                    queue.oldest.get_or_insert_with(Instant::now);
                    queue.entries.push(entry);
                    pending += 1;
                    metrics.pending(pending);
                    continue;
                }
                None => open = false,
            },
            _ = tick.tick() => {}
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            warn!(lost, "audit queue full; entries were dropped");
            metrics.dropped(lost);
        }
        for (prefix, queue) in queues.iter_mut() {
            while !queue.entries.is_empty() {
                let take = queue.entries.len().min(MAX_BATCH);
                match write_batch(&shipper, &mut heads, prefix, &queue.entries[..take]).await {
                    Ok(head) => {
                        queue.entries.drain(..take);
                        metrics.shipped(take as u64);
                        metrics.written(&queue.tenant, &head);
                    }
                    Err(error) => {
                        metrics.ship_failed();
                        warn!(%error, chain = %prefix, queued = queue.entries.len(), "could not write audit records; will retry");
                        break;
                    }
                }
            }
            if queue.entries.is_empty() {
                queue.oldest = None;
                if queue.behind {
                    metrics.chain_lag(&queue.tenant, 0.0);
                }
            } else {
                queue.behind = true;
                let waited = queue.oldest.map_or(0.0, |t| t.elapsed().as_secs_f64());
                metrics.chain_lag(&queue.tenant, waited);
            }
        }
        queues.retain(|_, q| !q.entries.is_empty());
        pending = queues.values().map(|q| q.entries.len()).sum();
        metrics.pending(pending);
        let lag = queues
            .values()
            .filter_map(|q| q.oldest)
            .map(|t| t.elapsed().as_secs_f64())
            .fold(0.0, f64::max);
        metrics.lag(lag);
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

/// Links `entries` after the head of the chain at `prefix` and writes them as one new
/// signed object, reloading the head from the store when unknown or when another writer
/// took the key. Returns the chain's new head.
async fn write_batch(
    shipper: &Shipper,
    heads: &mut BTreeMap<String, Head>,
    prefix: &str,
    entries: &[Entry],
) -> Result<Head, CloudError> {
    let store = &shipper.store;
    for _ in 0..5 {
        let head = match heads.get(prefix) {
            Some(head) => head.clone(),
            None => store.head(prefix).await?,
        };
        let (records, next) = link(entries, &head);
        let key = batch_key(prefix, head.seq + 1);
        match store
            .put_new(&key, signed_body(&key, &records, &shipper.signer))
            .await
        {
            Ok(Put::Written) => {
                debug!(%key, records = records.len(), "audit records written");
                heads.insert(prefix.to_string(), next.clone());
                return Ok(next);
            }
            Ok(Put::Exists) => {
                debug!(%key, "audit batch key taken by another writer; reloading the head");
                heads.remove(prefix);
            }
            Err(e) => {
                heads.remove(prefix);
                return Err(e);
            }
        }
    }
    Err(CloudError::other(
        "PutObject",
        format!("audit chain {prefix} kept moving under five attempts to append"),
    ))
}
