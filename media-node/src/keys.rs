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
    /// Where the wrapped tenant data key is.
    pub tenant_key: TenantKeySource,
    /// SPKI PEM of the operator's control key; `None` disables the control API.
    pub control_public_key: Option<PathBuf>,
    /// This node's name (the pod's): control tokens must name it.
    pub node_name: String,
    /// Master key for the local provider.
    pub local_master_key_file: Option<PathBuf>,
    /// The VideoTenant's uid, part of the KMS encryption context (`aws` provider).
    pub tenant_uid: Option<String>,
}

/// Where the wrapped tenant data key is read from.
#[derive(Clone, Debug)]
pub enum TenantKeySource {
    /// One version, fixed for the life of the process.
    File {
        /// The wrapped key.
        path: PathBuf,
        /// Its version (recorded in every recording it wraps a data key for).
        version: i32,
    },
    /// The newest of the files `v1`, `v2`, ... in a directory (the mounted Secret the
    /// operator adds versions to), looked for again every few seconds: a rotation reaches a
    /// running node without a restart, so no call ends for it.
    Dir(PathBuf),
}

impl TenantKeySource {
    /// The newest version there and its file.
    pub fn newest(&self) -> Result<(i32, PathBuf), KeyError> {
        match self {
            TenantKeySource::File { path, version } => Ok((*version, path.clone())),
            TenantKeySource::Dir(dir) => {
                let entries = std::fs::read_dir(dir).map_err(|source| KeyError::Read {
                    path: dir.clone(),
                    source,
                })?;
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        let version: i32 = name.strip_prefix('v')?.parse().ok()?;
                        (version > 0 && name == format!("v{version}")).then_some(version)
                    })
                    .max()
                    .map(|v| (v, dir.join(format!("v{v}"))))
                    .ok_or_else(|| KeyError::NoTenantKey(dir.clone()))
            }
        }
    }
}

/// One unwrapped version of the tenant data key.
pub struct TenantKey {
    /// Plaintext key (32 bytes), zeroized on drop; never logged.
    pub key: Arc<Zeroizing<Vec<u8>>>,
    /// Its version.
    pub version: i32,
}

/// The loaded keys.
pub struct Keys {
    /// Join-token verifier; replaced when the published public keys change.
    verifier: RwLock<Arc<Verifier>>,
    /// The public key file as last read.
    public_pem: Mutex<Vec<u8>>,
    /// The newest tenant data key version; recordings take the one current when they start.
    tenant_key: RwLock<Arc<TenantKey>>,
    /// Control-token verifier, when the control API is configured.
    pub control: Option<ControlVerifier>,
}

impl Keys {
    /// The tenant data key new recordings use.
    pub fn tenant_key(&self) -> Arc<TenantKey> {
        self.tenant_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes a newer tenant key version when one appeared (rotation); returns its version.
    /// Recordings already running keep the version they started with.
    pub async fn reload_tenant_key(
        &self,
        cfg: &KeyConfig,
        unwrapper: &Unwrapper,
    ) -> Result<Option<i32>, KeyError> {
        let (version, path) = cfg.tenant_key.newest()?;
        if version <= self.tenant_key().version {
            return Ok(None);
        }
        let key = unwrap_tenant_key(unwrapper, read(&path)?).await?;
        *self.tenant_key.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(TenantKey {
            key: Arc::new(key),
            version,
        });
        Ok(Some(version))
    }

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
    /// The key directory holds no `v<N>` file.
    #[error("{0} holds no tenant key version (files v1, v2, ...)")]
    NoTenantKey(PathBuf),
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
    let (version, path) = cfg.tenant_key.newest()?;
    let tenant_key = unwrap_tenant_key(&Unwrapper::new(cfg, kms), read(&path)?).await?;
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
        tenant_key: RwLock::new(Arc::new(TenantKey {
            key: Arc::new(tenant_key),
            version,
        })),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_version_in_the_directory_is_taken_without_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let master = sanctum_keywrap::random_key().expect("master");
        let master_file = dir.path().join("master.key");
        std::fs::write(&master_file, master.as_slice()).expect("write");
        let (private, public) = crate::token::generate_keypair().expect("keys");
        drop(private);
        let public_key = dir.path().join("public.pem");
        std::fs::write(&public_key, &public).expect("write");
        let key_dir = dir.path().join("tenant-key");
        std::fs::create_dir(&key_dir).expect("dir");
        let wrap = || sanctum_keywrap::new_local_data_key(&master, "clinic-a").expect("wrap");
        std::fs::write(key_dir.join("v1"), wrap()).expect("write");
        // What a mounted Secret also holds: kubelet's own entries, not versions.
        std::fs::create_dir(key_dir.join("..data")).expect("dir");
        std::fs::write(key_dir.join("v1.bak"), b"not a version").expect("write");
        let cfg = KeyConfig {
            tenant: "clinic-a".into(),
            public_key,
            max_token_lifetime: Duration::from_secs(600),
            provider: Provider::Local,
            tenant_key: TenantKeySource::Dir(key_dir.clone()),
            control_public_key: None,
            node_name: "media-0".into(),
            local_master_key_file: Some(master_file),
            tenant_uid: None,
        };
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::Config::builder()
                .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
                .build(),
        );
        let unwrapper = Unwrapper::new(&cfg, &kms);
        let keys = load(&cfg, &kms).await.expect("loads");
        let first = keys.tenant_key();
        assert_eq!(first.version, 1);
        assert_eq!(
            keys.reload_tenant_key(&cfg, &unwrapper)
                .await
                .expect("reload"),
            None
        );

        std::fs::write(key_dir.join("v2"), wrap()).expect("write");
        assert_eq!(
            keys.reload_tenant_key(&cfg, &unwrapper)
                .await
                .expect("reload"),
            Some(2)
        );
        let second = keys.tenant_key();
        assert_eq!(second.version, 2);
        assert_ne!(second.key.as_slice(), first.key.as_slice(), "another key");
        assert_eq!(
            first.key.len(),
            32,
            "what a running recording holds stays usable"
        );

        // A version that does not unwrap is not taken; the one in force stays.
        std::fs::write(key_dir.join("v3"), b"garbage").expect("write");
        assert!(keys.reload_tenant_key(&cfg, &unwrapper).await.is_err());
        assert_eq!(keys.tenant_key().version, 2);
    }
}
