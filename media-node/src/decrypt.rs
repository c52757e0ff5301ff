//! `decrypt`: reads a sealed recording (a file or an S3 object) back to its WebM, for
//! someone holding credentials that unwrap the tenant key. Every chunk is verified; the
//! output appears only when the whole object verified (it is written beside the target
//! and renamed), so a tampered or truncated recording leaves no partial file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::keys::{Unwrapper, unwrap_tenant_key};
use crate::recording::seal::{self, Opened};

/// Where the sealed recording is.
#[derive(Clone, Debug)]
pub enum Source {
    /// A local file.
    File(PathBuf),
    /// An S3 object.
    S3 {
        /// Client (endpoint, region, credentials, addressing).
        client: aws_sdk_s3::Client,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Version, if not the latest.
        version_id: Option<String>,
    },
}

/// Decrypts `source` to `output`. `tenant_keys` holds the wrapped tenant key versions as
/// files named `v1`, `v2`, ... (the data of the `tenant-data-key` Secret); the header
/// says which one wrapped this recording's data key.
pub async fn decrypt(
    source: Source,
    tenant_keys: &Path,
    unwrapper: &Unwrapper,
    output: &Path,
) -> anyhow::Result<Opened> {
    let input: Box<dyn Read + Send> = match source {
        Source::File(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(&path).with_context(|| format!("opening {path:?}"))?,
        )),
        Source::S3 {
            client,
            bucket,
            key,
            version_id,
        } => {
            let object = client
                .get_object()
                .bucket(&bucket)
                .key(&key)
                .set_version_id(version_id)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))
                .with_context(|| format!("reading s3://{bucket}/{key}"))?;
            Box::new(tokio_util::io::SyncIoBridge::new(
                object.body.into_async_read(),
            ))
        }
    };
    // The header comes first: it names the key version to unwrap.
    let (header, raw, input) = tokio::task::spawn_blocking(move || {
        let mut input = input;
        seal::read_header_from(&mut input).map(|(h, raw)| (h, raw, input))
    })
    .await??;
    if header.tenant != unwrapper.tenant {
        bail!(
            "this recording belongs to tenant {:?}, not {:?}",
            header.tenant,
            unwrapper.tenant
        );
    }
    let wrapped_path = tenant_keys.join(format!("v{}", header.key_version));
    let wrapped = std::fs::read(&wrapped_path).with_context(|| {
        format!(
            "the recording's data key is wrapped by tenant key version {}; reading {wrapped_path:?}",
            header.key_version
        )
    })?;
    let tenant_key = unwrap_tenant_key(unwrapper, wrapped).await?;

    let partial = partial_path(output);
    // Plaintext media: readable by its owner only, and never over an existing file.
    let out = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {partial:?}"))?
    };
    let result = tokio::task::spawn_blocking(move || {
        let mut input = input;
        let mut out = std::io::BufWriter::new(out);
        let opened = seal::open_to(&tenant_key, header, &raw, &mut input, &mut out)?;
        out.flush()
            .map_err(|e| seal::SealError::Io(e.to_string()))?;
        Ok::<_, seal::SealError>(opened)
    })
    .await?;
    match result {
        Ok(opened) => {
            std::fs::rename(&partial, output).with_context(|| format!("writing {output:?}"))?;
            Ok(opened)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e.into())
        }
    }
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    output.with_file_name(name)
}
