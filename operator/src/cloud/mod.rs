//! KMS and S3: per-tenant keys and recording buckets, against AWS or any compatible endpoint.
//!
//! Every call is idempotent and starts by finding what an earlier, possibly crashed,
//! attempt made. Nothing here logs key material: only key ids, ARNs and bucket names.

pub mod buckets;
pub mod keys;
pub mod objects;

use aws_config::{BehaviorVersion, Region};

/// Where the AWS-compatible services are.
#[derive(Clone, Debug)]
pub struct CloudConfig {
    /// Custom endpoint (an S3/KMS-compatible store or an emulator); AWS when unset.
    pub endpoint: Option<String>,
    /// Default region for buckets and keys.
    pub region: String,
    /// Path-style S3 addressing, which most S3-compatible stores need.
    pub force_path_style: bool,
}

/// Clients shared by all reconciles.
#[derive(Clone, Debug)]
pub struct Cloud {
    /// KMS client.
    pub kms: aws_sdk_kms::Client,
    /// S3 client.
    pub s3: aws_sdk_s3::Client,
    /// Default region.
    pub region: String,
}

impl Cloud {
    /// Loads credentials the standard way (environment, profile, IRSA, instance role).
    pub async fn new(config: &CloudConfig) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.force_path_style)
            .build();
        Self {
            kms: aws_sdk_kms::Client::new(&shared),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            region: config.region.clone(),
        }
    }
}

pub use sanctum_audit::CloudError;
