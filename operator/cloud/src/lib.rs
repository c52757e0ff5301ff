//! How both binaries reach AWS, or an S3/KMS-compatible store: the one place where clients
//! are configured, bucket ownership is enforced and failed calls become [`CloudError`].
//!
//! Every S3 request names the account that must own its bucket (`ExpectedBucketOwner`,
//! see [`owner`]), so a bucket of the same name in someone else's account, made before ours
//! or after ours was deleted, is refused by S3 instead of receiving PHI. Nothing here logs
//! credentials or key material.

#![forbid(unsafe_code)]

pub mod args;
pub mod error;
pub mod kms;
pub mod objects;
pub mod owner;

pub use args::CloudArgs;
pub use error::{CloudError, error_chain};
pub use owner::BucketOwners;

use aws_config::{BehaviorVersion, Region};

/// Type of results whose error is a failed cloud call.
pub type Result<T, E = CloudError> = std::result::Result<T, E>;

/// Where the AWS-compatible services are, and who must own the buckets.
#[derive(Clone, Debug)]
pub struct CloudConfig {
    /// Custom endpoint (an S3/KMS-compatible store or an emulator); AWS when unset.
    pub endpoint: Option<String>,
    /// Default region for buckets and keys.
    pub region: String,
    /// Path-style S3 addressing, which most S3-compatible stores need.
    pub force_path_style: bool,
    /// The account every bucket must belong to.
    pub owners: OwnerSetting,
}

/// Which account must own the buckets a process touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerSetting {
    /// The caller's own account, asked of STS `GetCallerIdentity` at connect.
    Caller,
    /// These accounts (an account for every bucket, with per-bucket exceptions).
    Given(BucketOwners),
    /// No check: for S3-compatible stores that have no accounts. Never on AWS.
    Unchecked,
}

impl OwnerSetting {
    /// Parses the command-line form: empty for the caller's account, `none` for no check,
    /// else an account id, then optional `bucket=account` exceptions.
    pub fn parse(account: Option<&str>, exceptions: &[String]) -> Result<Self, String> {
        let owners = match account.map(str::trim) {
            None | Some("") => {
                if exceptions.is_empty() {
                    return Ok(Self::Caller);
                }
                return Err("bucket owner exceptions need --aws-account-id".into());
            }
            Some("none") => {
                if exceptions.is_empty() {
                    return Ok(Self::Unchecked);
                }
                return Err(
                    "bucket owner exceptions make no sense with --aws-account-id=none".into(),
                );
            }
            Some(account) => BucketOwners::new(account)?,
        };
        exceptions
            .iter()
            .try_fold(owners, |owners, e| {
                let (bucket, account) = e
                    .split_once('=')
                    .ok_or_else(|| format!("bucket owner exception {e:?} is not BUCKET=ACCOUNT"))?;
                owners.with(bucket, account)
            })
            .map(Self::Given)
    }
}

/// KMS and S3 clients with this configuration.
#[derive(Clone, Debug)]
pub struct Clients {
    /// KMS client.
    pub kms: aws_sdk_kms::Client,
    /// S3 client; every request carries the expected bucket owner.
    pub s3: aws_sdk_s3::Client,
    /// Default region.
    pub region: String,
    /// Who owns the buckets (`None`: unchecked).
    pub owners: Option<BucketOwners>,
}

impl Clients {
    /// Loads credentials the standard way (environment, profile, IRSA, instance role),
    /// and with [`OwnerSetting::Caller`] asks STS which account they belong to; fails
    /// when STS cannot say.
    pub async fn connect(config: &CloudConfig) -> Result<Self> {
        Self::connect_with(config, false).await
    }

    /// [`Clients::connect`] for a process that may never call S3 (a media node without
    /// recordings): when STS cannot say whose credentials these are, it starts anyway,
    /// and every S3 request it makes is refused before it is sent.
    pub async fn connect_or_refuse_s3(config: &CloudConfig) -> Result<Self> {
        Self::connect_with(config, true).await
    }

    /// The same clients (credentials, endpoint, bucket-owner check) for another region:
    /// S3 answers for a bucket only in its own region (a backup bucket elsewhere).
    pub fn in_region(&self, region: &str) -> Self {
        let region_of = || Region::new(region.to_string());
        Self {
            kms: aws_sdk_kms::Client::from_conf(
                self.kms.config().to_builder().region(region_of()).build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(
                self.s3.config().to_builder().region(region_of()).build(),
            ),
            region: region.to_string(),
            owners: self.owners.clone(),
        }
    }

    async fn connect_with(config: &CloudConfig, lenient: bool) -> Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let owners = match &config.owners {
            OwnerSetting::Given(owners) => Some(owners.clone()),
            OwnerSetting::Unchecked => None,
            OwnerSetting::Caller => match caller_account(&shared).await {
                Ok(owners) => Some(owners),
                Err(error) if lenient => {
                    tracing::warn!(%error, "the account that owns the buckets is unknown; S3 requests will be refused (set --aws-account-id)");
                    None
                }
                Err(error) => return Err(error),
            },
        };
        let mut s3 =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.force_path_style);
        match (&owners, &config.owners) {
            (Some(owners), _) => {
                s3 = s3.interceptor(owner::ExpectBucketOwner::new(Some(owners.clone())));
            }
            // Asked to check and unable to: refuse rather than send unchecked requests.
            (None, OwnerSetting::Caller) => {
                s3 = s3.interceptor(owner::ExpectBucketOwner::new(None));
            }
            (None, _) => {}
        }
        Ok(Self {
            kms: aws_sdk_kms::Client::new(&shared),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            region: config.region.clone(),
            owners,
        })
    }
}

/// The account of the credentials `shared` loads, from STS.
async fn caller_account(shared: &aws_config::SdkConfig) -> Result<BucketOwners> {
    let me = aws_sdk_sts::Client::new(shared)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("GetCallerIdentity", &e))?;
    let account = me
        .account()
        .ok_or_else(|| CloudError::other("GetCallerIdentity", "no account in the response"))?;
    BucketOwners::new(account).map_err(|e| CloudError::other("GetCallerIdentity", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_settings_parse_as_documented() {
        assert_eq!(OwnerSetting::parse(None, &[]), Ok(OwnerSetting::Caller));
        assert_eq!(OwnerSetting::parse(Some(""), &[]), Ok(OwnerSetting::Caller));
        assert_eq!(
            OwnerSetting::parse(Some("none"), &[]),
            Ok(OwnerSetting::Unchecked)
        );
        let given =
            OwnerSetting::parse(Some("123456789012"), &["backups=210987654321".to_string()])
                .expect("valid");
        let OwnerSetting::Given(owners) = given else {
            panic!("an account was given")
        };
        assert_eq!(owners.of("recordings"), "123456789012");
        assert_eq!(owners.of("backups"), "210987654321");
        assert!(
            OwnerSetting::parse(Some("12345"), &[]).is_err(),
            "not 12 digits"
        );
        assert!(OwnerSetting::parse(None, &["b=123456789012".into()]).is_err());
        assert!(OwnerSetting::parse(Some("123456789012"), &["b:1".into()]).is_err());
    }
}
