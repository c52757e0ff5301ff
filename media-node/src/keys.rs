//! Loads what the node needs before it is ready: the join-token public key and the
//! tenant data key, unwrapped (KMS with the tenant's encryption context, or the local
//! provider's master key) and held in memory only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sanctum_cloud::kms::KeyContext;
use sanctum_keywrap::unwrap_local;
use zeroize::Zeroizing;

use crate::token::Verifier;
use sanctum_control::Verifier as ControlVerifier;

/// Which service unwraps the tenant data key: the same type the manifests spell.
pub use sanctum_api::KeyProvider as Provider;

/// Where the keys are.
#[derive(Clone, Debug)]
pub struct KeyConfig {
    /// Tenant name: token audience and encryption context.
    pub tenant: String,
    /// SPKI PEM of the join-token public key.
    pub public_key: PathBuf,
    /// Longest token lifetime accepted.
    pub max_token_lifetime: Duration,
    /// Key provider.
    pub provider: Provider,
    /// The wrapped tenant data key (one version).
    pub tenant_key_file: PathBuf,
    /// Version of that key (recorded in every recording it wraps a data key for).
    pub tenant_key_version: i32,
    /// SPKI PEM of the operator's control key; `None` disables the control API.
    pub control_public_key: Option<PathBuf>,
    /// This node's name (the pod's): control tokens must name it.
    pub node_name: String,
    /// Master key for the local provider.
    pub local_master_key_file: Option<PathBuf>,
    /// The VideoTenant's uid, part of the KMS encryption context (`aws` provider).
    pub tenant_uid: Option<String>,
}

/// The loaded keys.
pub struct Keys {
    /// Join-token verifier; replaced when the published public keys change.
    verifier: RwLock<Arc<Verifier>>,
    /// The public key file as last read.
    public_pem: Mutex<Vec<u8>>,
    /// Plaintext tenant data key (32 bytes), zeroized on drop; never logged.
    pub tenant_key: Arc<Zeroizing<Vec<u8>>>,
    /// Its version.
    pub key_version: i32,
    /// Control-token verifier, when the control API is configured.
    pub control: Option<ControlVerifier>,
}

impl Keys {
    /// The join-token verifier in force.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.verifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the join-token public key file again and, when it changed, verifies with
    /// what it holds now (kubelet rewrites a mounted ConfigMap when the operator publishes
    /// another key). Returns the ids of the keys now in force when they changed.
    pub fn reload_join_token_keys(&self, cfg: &KeyConfig) -> Result<Option<Vec<String>>, KeyError> {
        let public = read(&cfg.public_key)?;
        let mut last = self.public_pem.lock().unwrap_or_else(|e| e.into_inner());
        if *last == public {
            return Ok(None);
        }
        let verifier = Verifier::from_public_pem(&public, &cfg.tenant, cfg.max_token_lifetime)
            .map_err(|_| KeyError::PublicKey)?;
        let ids = verifier.key_ids().map(str::to_string).collect();
        *self.verifier.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(verifier);
        *last = public;
        Ok(Some(ids))
    }
}

/// Why keys could not be loaded; the node retries and stays unready meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A public key is not an Ed25519 SPKI PEM.
    #[error("the join-token or control public key is not an Ed25519 PEM key")]
    PublicKey,
    /// The local provider needs a master key file.
    #[error("the local key provider needs --local-master-key-file")]
    NoMasterKey,
    /// The wrapped key does not open for this tenant.
    #[error("the tenant key does not unwrap: {0}")]
    Unwrap(String),
    /// The `aws` provider needs the tenant's uid for the encryption context.
    #[error("the aws key provider needs --tenant-uid (the VideoTenant's metadata.uid)")]
    NoTenantUid,
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and unwraps the keys (`kms` unwraps with the `aws` provider).
pub async fn load(cfg: &KeyConfig, kms: &aws_sdk_kms::Client) -> Result<Keys, KeyError> {
    let public = read(&cfg.public_key)?;
    let verifier = Verifier::from_public_pem(&public, &cfg.tenant, cfg.max_token_lifetime)
        .map_err(|_| KeyError::PublicKey)?;
    let wrapped = read(&cfg.tenant_key_file)?;
    let tenant_key = unwrap_tenant_key(&Unwrapper::new(cfg, kms), wrapped).await?;
    let control = match &cfg.control_public_key {
        Some(path) => Some(
            ControlVerifier::from_public_pem(&read(path)?, &cfg.tenant, &cfg.node_name)
                .map_err(|_| KeyError::PublicKey)?,
        ),
        None => None,
    };
    Ok(Keys {
        verifier: RwLock::new(Arc::new(verifier)),
        public_pem: Mutex::new(public),
        tenant_key: Arc::new(tenant_key),
        key_version: cfg.tenant_key_version,
        control,
    })
}

/// What unwrapping a tenant key takes (the node's configuration, or `decrypt`'s flags).
#[derive(Clone, Debug)]
pub struct Unwrapper {
    /// Tenant (encryption context).
    pub tenant: String,
    /// The tenant's uid (KMS encryption context).
    pub tenant_uid: Option<String>,
    /// Key provider.
    pub provider: Provider,
    /// Master key for the local provider.
    pub local_master_key_file: Option<PathBuf>,
    /// KMS client (the `aws` provider).
    pub kms: aws_sdk_kms::Client,
}

impl Unwrapper {
    /// The unwrapper of a serving node.
    pub fn new(cfg: &KeyConfig, kms: &aws_sdk_kms::Client) -> Self {
        Unwrapper {
            tenant: cfg.tenant.clone(),
            tenant_uid: cfg.tenant_uid.clone(),
            provider: cfg.provider,
            local_master_key_file: cfg.local_master_key_file.clone(),
            kms: kms.clone(),
        }
    }
}

/// Unwraps one wrapped tenant key (any version) with the configured provider.
pub async fn unwrap_tenant_key(
    cfg: &Unwrapper,
    wrapped: Vec<u8>,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    match cfg.provider {
        Provider::Local => {
            let path = cfg
                .local_master_key_file
                .as_ref()
                .ok_or(KeyError::NoMasterKey)?;
            let master = Zeroizing::new(read(path)?);
            unwrap_local(&master, &wrapped, &cfg.tenant)
                .map_err(|e| KeyError::Unwrap(e.to_string()))
        }
        Provider::Aws => {
            let uid = cfg.tenant_uid.as_deref().ok_or(KeyError::NoTenantUid)?;
            let context = KeyContext {
                tenant: &cfg.tenant,
                uid,
            };
            sanctum_cloud::kms::unwrap(&cfg.kms, &wrapped, context)
                .await
                .map_err(|e| KeyError::Unwrap(e.to_string()))
        }
    }
}
