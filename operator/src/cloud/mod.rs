//! KMS and S3: per-tenant keys and recording buckets, against AWS or any compatible endpoint.
//!
//! Every call is idempotent and starts by finding what an earlier, possibly crashed,
//! attempt made. Nothing here logs key material: only key ids, ARNs and bucket names.

pub mod buckets;
pub mod keys;
pub mod objects;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::error::ProvideErrorMetadata;

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

/// A failed KMS or S3 call, with the service's error code.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct CloudError {
    /// The API operation.
    pub operation: &'static str,
    /// Service error code (`AccessDenied`, `NotFoundException`, ...), when the service sent one.
    pub code: Option<String>,
    /// Human-readable detail.
    pub message: String,
}

impl CloudError {
    /// Wraps an SDK error from `operation`.
    pub fn from_sdk<E>(operation: &'static str, error: &E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error,
    {
        let message = error
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| error_chain(error));
        Self {
            operation,
            code: error.code().map(str::to_string),
            message,
        }
    }

    /// A problem the operator cannot create; for example a response without a field.
    pub fn other(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            code: None,
            message: message.into(),
        }
    }

    /// Errors retrying cannot fix: permissions and invalid settings need a person.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "AccessDenied"
                    | "AccessDeniedException"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "UnrecognizedClientException"
                    | "InvalidBucketName"
                    | "BucketAlreadyExists"
                    | "InvalidLocationConstraint"
                    | "IllegalLocationConstraintException"
                    | "MalformedPolicy"
                    | "ValidationException"
                    | "DisabledException"
                    | "KMSInvalidStateException"
                    | "InvalidKeyUsageException"
            )
        )
    }

    /// The service said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c.starts_with("NoSuch") || c.contains("NotFound"))
    }
}

fn error_chain<E: std::error::Error>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
