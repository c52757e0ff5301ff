//! The AWS side of the tests: clients for the emulator the operator under test talks to,
//! another account's client (for cross-account attacks), and the audit signers the
//! operator publishes.

use anyhow::{Context as _, Result};
use kube::{Api, Client};

/// KMS and S3 clients for the emulator the operator under test talks to.
pub async fn cloud() -> Result<sanctum_operator::cloud::Cloud> {
    let endpoint = std::env::var("SANCTUM_AWS_ENDPOINT")
        .context("SANCTUM_AWS_ENDPOINT is set by e2e/test.sh")?;
    sanctum_operator::cloud::Cloud::connect(&sanctum_operator::cloud::CloudConfig {
        endpoint: Some(endpoint),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        force_path_style: true,
        owners: sanctum_operator::cloud::OwnerSetting::Caller,
    })
    .await
    .context("AWS clients for the emulator")
}

/// The operator's audit signing keys, as `sanctum audit verify --public-keys` reads them:
/// from the ConfigMap the operator publishes them in, written to a file.
pub async fn audit_public_keys(client: &Client) -> Result<tempfile::NamedTempFile> {
    let map =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "sanctum-system")
            .get(sanctum_operator::audit::SIGNERS_CONFIG_MAP)
            .await
            .context("the audit signers ConfigMap the operator publishes")?;
    let pem = map
        .data
        .and_then(|d| d.get(sanctum_operator::audit::SIGNERS_KEY).cloned())
        .context("signers.pem")?;
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut file, pem.as_bytes())?;
    Ok(file)
}

/// An S3 client of another AWS account on the emulator (a role assumed there, as its
/// owner would): someone else's account, for the cross-account attacks of the tests.
pub async fn s3_of_account(account: &str) -> Result<aws_sdk_s3::Client> {
    let endpoint = std::env::var("SANCTUM_AWS_ENDPOINT")
        .context("SANCTUM_AWS_ENDPOINT is set by e2e/test.sh")?;
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .load()
        .await;
    let assumed = aws_sdk_sts::Client::new(&shared)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/e2e-other-account"))
        .role_session_name("e2e-other-account")
        .send()
        .await
        .context("assuming a role in another account")?;
    let creds = assumed.credentials().context("assumed role credentials")?;
    let provider = aws_sdk_s3::config::Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        None,
        "e2e-other-account",
    );
    Ok(aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .credentials_provider(provider)
            .force_path_style(true)
            .build(),
    ))
}

/// Puts `plain` into the tenant's bucket at `recordings/<recording>.webm.sealed`, sealed as
/// a media node seals a recording: under the data key v1 from the tenant's Secret
/// `tenant-data-key`, unwrapped through KMS with its name and uid (`aws` provider) or by the
/// tenant's key-encryption key (`local`).
pub async fn put_sealed_recording(
    client: &Client,
    cloud: &sanctum_operator::cloud::Cloud,
    tenant: &sanctum_api::VideoTenant,
    recording: &str,
    plain: &[u8],
) -> Result<String> {
    let status = tenant.status.as_ref().context("the tenant's status")?;
    let namespace = status.namespace.as_deref().context("status.namespace")?;
    let bucket = status.bucket.as_deref().context("status.bucket")?;
    let uid = tenant.metadata.uid.as_deref().context("uid")?;
    let name = tenant.metadata.name.as_deref().context("name")?;
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .get("tenant-data-key")
        .await?;
    let wrapped = secret
        .data
        .unwrap_or_default()
        .get("v1")
        .context("data key v1")?
        .0
        .clone();
    let tenant_key = match tenant.spec.encryption.provider {
        sanctum_api::KeyProvider::Aws => {
            let context = sanctum_operator::cloud::kms::KeyContext { tenant: name, uid };
            sanctum_operator::cloud::kms::unwrap(&cloud.kms, &wrapped, context).await?
        }
        // The tenant's key-encryption key, from the copy its media nodes mount.
        sanctum_api::KeyProvider::Local => {
            let master =
                Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
                    .get("tenant-local-key")
                    .await?;
            let master = master
                .data
                .unwrap_or_default()
                .into_values()
                .next()
                .context("the tenant's local key")?;
            sanctum_keywrap::unwrap_local(&master.0, &wrapped, name)?
        }
    };
    let key = format!("recordings/{recording}.webm.sealed");
    let mut sealed = Vec::new();
    let (mut sealer, _) = sanctum_keywrap::seal::Sealer::start(
        &tenant_key,
        name,
        recording,
        1,
        "video/webm",
        &mut sealed,
    )?;
    sealer.push(plain, &mut sealed)?;
    sealer.finish(&mut sealed)?;
    cloud
        .s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from(sealed))
        .send()
        .await?;
    Ok(key)
}

/// Makes `bucket` in `region` (`None`: the client's own), with Object Lock enabled when
/// `lock`; a bucket of that name this account already has is kept.
pub async fn create_bucket_in(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: Option<&str>,
    lock: bool,
) -> Result<()> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let made = s3
        .create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(lock)
        .set_create_bucket_configuration(region.map(|r| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(r))
                .build()
        }))
        .send()
        .await;
    if let Err(e) = made {
        let owned = e
            .as_service_error()
            .is_some_and(|e| e.is_bucket_already_owned_by_you());
        anyhow::ensure!(owned, "creating bucket {bucket}: {e:?}");
    }
    Ok(())
}

/// Makes `bucket` as a platform team makes a backup bucket, which `sanctum backup`
/// requires: Object Lock with a default retention (`COMPLIANCE`, one day).
pub async fn create_backup_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: Option<&str>,
) -> Result<()> {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    create_bucket_in(s3, bucket, region, true).await?;
    // Kept from an earlier run: already locked (the emulator refuses to change the lock
    // configuration of a bucket that holds objects).
    let current = s3
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await;
    if current.is_ok_and(|c| {
        c.object_lock_configuration()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention())
            .is_some()
    }) {
        return Ok(());
    }
    let retention = DefaultRetention::builder()
        .mode(ObjectLockRetentionMode::Compliance)
        .days(1)
        .build();
    s3.put_object_lock_configuration()
        .bucket(bucket)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(retention)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("default retention on {bucket}"))?;
    Ok(())
}
