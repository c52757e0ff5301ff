//! The error of a failed AWS call, shared by everything that talks to KMS or S3.

use aws_sdk_s3::error::ProvideErrorMetadata;

/// A failed KMS, S3 or STS call, with the service's error code.
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

    /// A refusal of ours, with a code a person can act on (`BucketNotOwned`, `KeyNotOwned`).
    pub fn refused(operation: &'static str, code: &str, message: impl Into<String>) -> Self {
        Self {
            operation,
            code: Some(code.to_string()),
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
                    | "BucketNotOwned"
                    | "KeyNotOwned"
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

/// An error and its sources, one line (`a: b: c`), for logs and status messages.
pub fn error_chain<E: std::error::Error + ?Sized>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
