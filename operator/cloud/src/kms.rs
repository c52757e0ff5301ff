//! Tenant data keys under KMS: made wrapped (the plaintext never leaves KMS) and unwrapped
//! by media nodes and tools, always under the tenant's encryption context.
//!
//! The context names the tenant and its uid: a wrapped key opens only for the tenant
//! object it was made for, so a tenant deleted and re-created under the same name (or a
//! tenant pointed at another one's key) cannot unwrap what the earlier one wrapped.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use crate::{CloudError, Result};

/// Encryption-context key naming the tenant (the same as the local provider's AAD).
pub use sanctum_keywrap::CONTEXT_KEY as TENANT_CONTEXT;
/// Encryption-context key naming the tenant object's uid.
pub const TENANT_UID_CONTEXT: &str = "sanctum:tenant-uid";

/// Whose key: the tenant's name and its object's uid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyContext<'a> {
    /// Tenant name.
    pub tenant: &'a str,
    /// The VideoTenant's `metadata.uid`.
    pub uid: &'a str,
}

/// A new 256-bit data key wrapped by `key_id` under the tenant's context.
pub async fn new_data_key(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    context: KeyContext<'_>,
) -> Result<Vec<u8>> {
    let out = kms
        .generate_data_key_without_plaintext()
        .key_id(key_id)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context(TENANT_CONTEXT, context.tenant)
        .encryption_context(TENANT_UID_CONTEXT, context.uid)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("GenerateDataKeyWithoutPlaintext", &e))?;
    Ok(out
        .ciphertext_blob()
        .ok_or_else(|| {
            CloudError::other(
                "GenerateDataKeyWithoutPlaintext",
                "no ciphertext in the response",
            )
        })?
        .as_ref()
        .to_vec())
}

/// Unwraps a KMS-wrapped tenant data key; KMS refuses unless the context is the one it
/// was wrapped under.
pub async fn unwrap(
    kms: &aws_sdk_kms::Client,
    wrapped: &[u8],
    context: KeyContext<'_>,
) -> Result<Zeroizing<Vec<u8>>> {
    let out = kms
        .decrypt()
        .ciphertext_blob(Blob::new(wrapped.to_vec()))
        .encryption_context(TENANT_CONTEXT, context.tenant)
        .encryption_context(TENANT_UID_CONTEXT, context.uid)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("Decrypt", &e))?;
    let plain = out
        .plaintext()
        .ok_or_else(|| CloudError::other("Decrypt", "no plaintext in the response"))?;
    Ok(Zeroizing::new(plain.as_ref().to_vec()))
}
