//! Streams ciphertext to S3 with a multipart upload; nothing touches the local disk.
//!
//! Parts are sent once [`PART_SIZE`] bytes are pending (S3's minimum is 5 MiB for every
//! part but the last). The SHA-256 of the whole object is computed on the way. If the node
//! dies, the upload stays incomplete — invisible to readers, resumable or abortable by its
//! upload id, and removed by the bucket's abort-incomplete-uploads lifecycle rule.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use sha2::{Digest, Sha256};

/// Bytes per uploaded part.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
#[error("S3 {op} failed: {message}")]
pub struct UploadError {
    /// The S3 operation.
    pub op: &'static str,
    /// The service's message (no object contents).
    pub message: String,
}

fn err<E: std::error::Error>(op: &'static str) -> impl FnOnce(E) -> UploadError {
    move |e| UploadError {
        op,
        message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// Where and how the object is written.
#[derive(Clone, Debug)]
pub struct Target {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// KMS key for SSE-KMS (the bucket policy refuses uploads without server-side
    /// encryption); `None` uses SSE-S3.
    pub kms_key_id: Option<String>,
}

/// What S3 holds once the upload completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Object version (versioned buckets).
    pub version_id: Option<String>,
    /// Bytes stored.
    pub size: u64,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
}

/// One multipart upload in progress.
pub struct Upload {
    client: Client,
    target: Target,
    upload_id: String,
    parts: Vec<CompletedPart>,
    pending: Vec<u8>,
    hasher: Sha256,
    size: u64,
}

impl Upload {
    /// Starts the multipart upload.
    pub async fn start(client: Client, target: Target) -> Result<Self, UploadError> {
        let mut req = client
            .create_multipart_upload()
            .bucket(&target.bucket)
            .key(&target.key)
            .content_type("application/vnd.sanctum.sealed-recording");
        req = match &target.kms_key_id {
            Some(key) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        };
        let out = req.send().await.map_err(err("CreateMultipartUpload"))?;
        let upload_id = out.upload_id().unwrap_or_default().to_string();
        Ok(Upload {
            client,
            target,
            upload_id,
            parts: Vec::new(),
            pending: Vec::with_capacity(PART_SIZE),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// The upload id (to resume or abort it after a crash).
    pub fn id(&self) -> &str {
        &self.upload_id
    }

    /// Bytes accepted so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Takes ciphertext; uploads a part when enough is pending.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= PART_SIZE {
            self.send_part().await?;
        }
        Ok(())
    }

    async fn send_part(&mut self) -> Result<(), UploadError> {
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let body = std::mem::replace(&mut self.pending, Vec::with_capacity(PART_SIZE));
        let out = self
            .client
            .upload_part()
            .bucket(&self.target.bucket)
            .key(&self.target.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(err("UploadPart"))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    /// Sends the last part and completes the object.
    pub async fn complete(mut self) -> Result<Stored, UploadError> {
        if !self.pending.is_empty() || self.parts.is_empty() {
            self.send_part().await?;
        }
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.target.bucket)
            .key(&self.target.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(err("CompleteMultipartUpload"))?;
        Ok(Stored {
            version_id: out.version_id().map(str::to_string),
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }

    /// Abandons the upload; S3 discards its parts.
    pub async fn abort(self) -> Result<(), UploadError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.target.bucket)
            .key(&self.target.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map_err(err("AbortMultipartUpload"))?;
        Ok(())
    }
}
