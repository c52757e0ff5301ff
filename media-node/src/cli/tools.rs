//! The node's tools: `mint-token` and `keygen` (local use and tests) and `decrypt`, which
//! reads a sealed recording back for an authorised operator.

use sanctum_api::env;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::decrypt::{self, Source};
use crate::keys::{Provider, Unwrapper};
use crate::token::{self, Grant, RoleClaim};

#[derive(clap::Args)]
pub struct DecryptArgs {
    /// Sealed recording on disk (instead of --bucket/--key).
    #[arg(long, conflicts_with_all = ["bucket", "key"], required_unless_present = "bucket")]
    input: Option<PathBuf>,
    /// Bucket of the recording.
    #[arg(long, requires = "key")]
    bucket: Option<String>,
    /// Object key of the recording.
    #[arg(long, requires = "bucket")]
    key: Option<String>,
    /// Object version (default: latest).
    #[arg(long)]
    version_id: Option<String>,
    /// Where to write the WebM (created only if the whole recording verifies).
    #[arg(long)]
    output: PathBuf,
    /// Tenant the recording belongs to.
    #[arg(long)]
    tenant: String,
    /// The tenant's uid (VideoTenant `metadata.uid`): part of the KMS encryption context.
    #[arg(long)]
    tenant_uid: Option<String>,
    /// Directory with the wrapped tenant key versions `v1`, `v2`, ... (the `tenant-data-key` Secret's data).
    #[arg(long)]
    tenant_key_dir: PathBuf,
    /// Service that unwraps the tenant key.
    #[arg(long)]
    key_provider: Provider,
    #[command(flatten)]
    store: StoreArgs,
}

/// Where keys are unwrapped and objects stored; shared by `serve` and `decrypt`.
/// Where keys are unwrapped and objects stored; shared by `serve` and `decrypt`.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Master key file of the local provider.
    #[arg(long, env = env::LOCAL_MASTER_KEY_FILE)]
    pub local_master_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub cloud: sanctum_cloud::CloudArgs,
}

#[derive(clap::Args)]
pub struct MintArgs {
    /// Tenant's private join-token key (PKCS#8 PEM).
    #[arg(long)]
    key: PathBuf,
    /// Tenant (audience).
    #[arg(long)]
    tenant: String,
    /// Room.
    #[arg(long)]
    room: String,
    /// Opaque user id.
    #[arg(long)]
    user: String,
    /// Role.
    #[arg(long, value_enum, default_value = "participant")]
    role: RoleClaim,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 600)]
    ttl_seconds: u64,
}

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Directory to write `private.pem`, `public.pem`, `master.key` and `tenant-key` into.
    #[arg(long)]
    dir: PathBuf,
    /// Tenant the wrapped key is bound to.
    #[arg(long)]
    tenant: String,
}

/// Prints a join token signed with the tenant's private key.
pub fn mint_token(a: &MintArgs) -> anyhow::Result<()> {
    let pem = std::fs::read(&a.key).with_context(|| format!("reading {:?}", a.key))?;
    let grant = Grant {
        tenant: a.tenant.clone(),
        room: a.room.clone(),
        user: a.user.clone(),
        role: a.role,
        ttl: Duration::from_secs(a.ttl_seconds),
    };
    println!(
        "{}",
        token::mint(&pem, &grant).context("signing the token")?
    );
    Ok(())
}

pub fn keygen(a: &KeygenArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir)?;
    let (private, public) = token::generate_keypair()?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = a.dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {path:?}"))
    };
    write("private.pem", &private)?;
    write("public.pem", &public)?;
    let master = sanctum_keywrap::random_key()?;
    write("master.key", &master)?;
    write(
        "tenant-key",
        &sanctum_keywrap::new_local_data_key(&master, &a.tenant)?,
    )?;
    println!(
        "wrote private.pem, public.pem, master.key and tenant-key to {:?}",
        a.dir
    );
    Ok(())
}

pub async fn decrypt(a: DecryptArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cloud = a.store.cloud.connect_or_refuse_s3().await?;
    let unwrapper = Unwrapper {
        tenant: a.tenant,
        tenant_uid: a.tenant_uid,
        provider: a.key_provider,
        local_master_key_file: a.store.local_master_key_file.clone(),
        kms: cloud.kms.clone(),
    };
    let source = match (a.input, a.bucket, a.key) {
        (Some(path), _, _) => Source::File(path),
        (None, Some(bucket), Some(key)) => Source::S3 {
            client: cloud.s3.clone(),
            bucket,
            key,
            version_id: a.version_id,
        },
        _ => anyhow::bail!("give --input, or --bucket and --key"),
    };
    let opened = decrypt::decrypt(source, &a.tenant_key_dir, &unwrapper, &a.output).await?;
    println!(
        "verified {} chunks of recording {} (tenant key v{}); wrote {} bytes of {} to {:?}",
        opened.chunks,
        opened.header.recording,
        opened.header.key_version,
        opened.bytes,
        opened.header.content_type,
        a.output
    );
    Ok(())
}
