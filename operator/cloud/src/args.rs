//! The command-line and environment form of [`crate::CloudConfig`], the same for every
//! binary and subcommand that reaches KMS or S3 (the operator passes its own values to
//! the pods it makes under these environment names).

use crate::{Clients, CloudConfig, CloudError, OwnerSetting};

/// Environment variable of [`CloudArgs::aws_endpoint`].
pub const AWS_ENDPOINT: &str = "SANCTUM_AWS_ENDPOINT";
/// Environment variable of [`CloudArgs::aws_region`] (the SDK's own).
pub const AWS_REGION: &str = "AWS_REGION";
/// Environment variable of [`CloudArgs::s3_path_style`].
pub const S3_PATH_STYLE: &str = "SANCTUM_S3_PATH_STYLE";
/// Environment variable of [`CloudArgs::aws_account_id`].
pub const AWS_ACCOUNT_ID: &str = "SANCTUM_AWS_ACCOUNT_ID";
/// Environment variable of [`CloudArgs::bucket_owners`].
pub const BUCKET_OWNERS: &str = "SANCTUM_BUCKET_OWNERS";

/// Where KMS and S3 are, and who must own the buckets.
#[derive(clap::Args, Clone, Debug)]
pub struct CloudArgs {
    /// S3/KMS endpoint for S3-compatible stores or an emulator; AWS when unset.
    #[arg(long, env = AWS_ENDPOINT)]
    pub aws_endpoint: Option<String>,
    /// Default AWS region for keys and buckets.
    #[arg(long, env = AWS_REGION, default_value = "us-east-1")]
    pub aws_region: String,
    /// Use path-style S3 addressing (most S3-compatible stores need it).
    #[arg(long, env = S3_PATH_STYLE, default_value_t = false)]
    pub s3_path_style: bool,
    /// The AWS account that must own every bucket (S3 refuses a request to a bucket of
    /// another account). Default: the account of the credentials, from STS
    /// GetCallerIdentity; `none` for S3-compatible stores without accounts.
    #[arg(long, env = AWS_ACCOUNT_ID)]
    pub aws_account_id: Option<String>,
    /// A bucket owned by another account than --aws-account-id, as BUCKET=ACCOUNT (a
    /// backup bucket in a second account); repeatable or comma-separated.
    #[arg(
        long = "bucket-owner",
        env = BUCKET_OWNERS,
        value_delimiter = ','
    )]
    pub bucket_owners: Vec<String>,
}

/// Why clients could not be made from the arguments.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// `--aws-account-id` or `--bucket-owner` is not valid.
    #[error("--aws-account-id / --bucket-owner: {0}")]
    Owners(String),
    /// STS could not say whose credentials these are.
    #[error("finding the AWS account that owns the buckets (set --aws-account-id to skip): {0}")]
    Account(#[source] CloudError),
}

impl CloudArgs {
    /// The configuration these arguments name, in `region` or `--aws-region`.
    pub fn config_in(&self, region: Option<&str>) -> Result<CloudConfig, ArgsError> {
        Ok(CloudConfig {
            endpoint: self.aws_endpoint.clone(),
            region: region.unwrap_or(&self.aws_region).to_string(),
            force_path_style: self.s3_path_style,
            owners: OwnerSetting::parse(self.aws_account_id.as_deref(), &self.bucket_owners)
                .map_err(ArgsError::Owners)?,
        })
    }

    /// Clients for these arguments.
    pub async fn connect(&self) -> Result<Clients, ArgsError> {
        self.connect_in(None).await
    }

    /// Clients for a process that may never call S3: see [`Clients::connect_or_refuse_s3`].
    pub async fn connect_or_refuse_s3(&self) -> Result<Clients, ArgsError> {
        Clients::connect_or_refuse_s3(&self.config_in(None)?)
            .await
            .map_err(ArgsError::Account)
    }

    /// Clients for the same store in another region (a backup bucket's), or `--aws-region`.
    pub async fn connect_in(&self, region: Option<&str>) -> Result<Clients, ArgsError> {
        Clients::connect(&self.config_in(region)?)
            .await
            .map_err(ArgsError::Account)
    }
}
