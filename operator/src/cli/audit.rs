//! `sanctum audit verify` and `sanctum audit export`: check a tenant's audit trail in the
//! bucket (`sanctum_audit::check`) and print it for an auditor.

use std::io::Write as _;
use std::path::PathBuf;

use crate::audit;
use crate::audit::store::AuditStore;
use anyhow::Context as _;
use clap::Subcommand;
use sanctum_cloud::CloudArgs;

/// Which tenant's audit chain, in which bucket.
#[derive(clap::Args)]
pub struct AuditArgs {
    /// Tenant whose chain to read.
    #[arg(long)]
    tenant: String,
    /// The audit bucket.
    #[arg(long, env = "SANCTUM_AUDIT_BUCKET")]
    bucket: String,
    /// The operator's audit signing keys (SPKI PEM): data `signers.pem` of ConfigMap
    /// `sanctum-audit-signers` in the operator's namespace. The reconcile chain must be
    /// signed by one of them; a media node's chain by the key its first record states.
    #[arg(long)]
    public_keys: PathBuf,
    /// The tenant's anchor, `SEQ:HASH` (its `status.lastAuditRecord`): the chain must hold
    /// that record, so a chain cut short or rewritten behind it is found.
    #[arg(long, value_parser = parse_anchor)]
    anchor: Option<audit::Head>,
    #[command(flatten)]
    cloud: CloudArgs,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk a tenant's chain; exit 1 naming the first changed, missing or reordered record.
    Verify(Box<AuditArgs>),
    /// Print a verified chain's records in a time range as JSON lines, for an auditor.
    Export {
        #[command(flatten)]
        args: Box<AuditArgs>,
        /// Earliest record time (RFC 3339), inclusive.
        #[arg(long)]
        since: Option<jiff::Timestamp>,
        /// Latest record time (RFC 3339), exclusive.
        #[arg(long)]
        until: Option<jiff::Timestamp>,
    },
}

pub fn parse_anchor(text: &str) -> Result<audit::Head, String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or("expected SEQ:HASH, as in status.lastAuditRecord")?;
    let seq = seq
        .parse()
        .map_err(|_| format!("{seq:?} is not a sequence number"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{hash:?} is not a SHA-256 in hex"));
    }
    Ok(audit::Head {
        seq,
        hash: hash.to_ascii_lowercase(),
    })
}

pub async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    let (args, range) = match command {
        AuditCommand::Verify(args) => (args, None),
        AuditCommand::Export { args, since, until } => (args, Some((since, until))),
    };
    let pem = std::fs::read_to_string(&args.public_keys)
        .with_context(|| format!("reading {}", args.public_keys.display()))?;
    let signers = audit::Trust::from_pems(&pem)
        .with_context(|| format!("{} holds no Ed25519 public key", args.public_keys.display()))?;
    let store = AuditStore::new(args.cloud.connect().await?.s3, &args.bucket);
    let tenant = &args.tenant;
    let gathered = audit::check::gather(&store, tenant).await?;
    let report = audit::check::judge(tenant, &gathered, &signers, args.anchor.as_ref())?;
    let Some((since, until)) = range else {
        for chain in &report.chains {
            println!(
                "audit chain of {tenant} ({}) intact and signed: {} records in {} objects, last record {} ({})",
                chain.name, chain.head.seq, chain.objects, chain.head.seq, chain.head.hash
            );
        }
        if let (Some(after), Some(anchor)) = (report.after_anchor, &args.anchor) {
            println!(
                "anchor {}:{} held; {after} record(s) written after it",
                anchor.seq, anchor.hash
            );
        }
        return Ok(());
    };
    let mut timed = Vec::new();
    for record in report.records {
        let time: jiff::Timestamp = record
            .time
            .parse()
            .with_context(|| format!("record {} has no valid time", record.seq))?;
        if since.is_none_or(|s| time >= s) && until.is_none_or(|u| time < u) {
            timed.push((time, record));
        }
    }
    // One timeline for the auditor; each record's `controller` names its chain.
    timed.sort_by_key(|(time, _)| *time);
    let mut out = std::io::stdout().lock();
    for (_, record) in timed {
        serde_json::to_writer(&mut out, &record)?;
        writeln!(out)?;
    }
    Ok(())
}
