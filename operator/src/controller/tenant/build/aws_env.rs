//! The AWS settings a tenant's pods get from the operator: media nodes and backup jobs
//! reach the same store, in the same region, with the same bucket-owner check, so the
//! environment that says so is written once.

use k8s_openapi::api::core::v1::EnvVar;
use sanctum_cloud::BucketOwners;
use sanctum_cloud::args as aws_vars;

/// The operator's own AWS settings, passed on to the pods it makes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsEnv {
    /// KMS and S3 endpoint for S3-compatible stores and emulators (unset on AWS).
    pub endpoint: Option<String>,
    /// AWS region of the tenant's key and bucket.
    pub region: String,
    /// Path-style S3 addressing, for S3-compatible stores.
    pub path_style: bool,
    /// The accounts that own the buckets, as the operator found them (`None`: the store
    /// has no accounts and nothing is checked).
    pub owners: Option<BucketOwners>,
}

impl AwsEnv {
    /// The environment variables both binaries read for these settings.
    pub fn env(&self) -> Vec<EnvVar> {
        let value = |name: &str, value: String| EnvVar {
            name: name.into(),
            value: Some(value),
            ..Default::default()
        };
        let mut env = vec![
            value(aws_vars::AWS_REGION, self.region.clone()),
            value(aws_vars::S3_PATH_STYLE, self.path_style.to_string()),
            // Always set, so pods never ask STS: the account is the operator's finding.
            value(
                aws_vars::AWS_ACCOUNT_ID,
                self.owners
                    .as_ref()
                    .map_or_else(|| "none".to_string(), |o| o.default_account().to_string()),
            ),
        ];
        if let Some(endpoint) = &self.endpoint {
            env.push(value(aws_vars::AWS_ENDPOINT, endpoint.clone()));
        }
        let exceptions: Vec<String> = self.owners.iter().flat_map(|o| o.exceptions()).collect();
        if !exceptions.is_empty() {
            env.push(value(aws_vars::BUCKET_OWNERS, exceptions.join(",")));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_map(aws: &AwsEnv) -> std::collections::BTreeMap<String, String> {
        aws.env()
            .into_iter()
            .map(|e| (e.name, e.value.expect("plain value")))
            .collect()
    }

    #[test]
    fn pods_are_told_the_account_that_owns_the_buckets() {
        let owners = BucketOwners::new("123456789012")
            .and_then(|o| o.with("dr-backups", "210987654321"))
            .expect("valid");
        let env = env_map(&AwsEnv {
            endpoint: Some("https://s3.example.internal".into()),
            region: "eu-west-1".into(),
            path_style: true,
            owners: Some(owners),
        });
        assert_eq!(env["SANCTUM_AWS_ACCOUNT_ID"], "123456789012");
        assert_eq!(env["SANCTUM_BUCKET_OWNERS"], "dr-backups=210987654321");
        assert_eq!(env["SANCTUM_AWS_ENDPOINT"], "https://s3.example.internal");
        assert_eq!(env["AWS_REGION"], "eu-west-1");
        assert_eq!(env["SANCTUM_S3_PATH_STYLE"], "true");
    }

    #[test]
    fn a_store_without_accounts_is_said_so_and_aws_needs_no_endpoint() {
        let env = env_map(&AwsEnv {
            region: "us-east-1".into(),
            ..Default::default()
        });
        assert_eq!(env["SANCTUM_AWS_ACCOUNT_ID"], "none");
        assert!(!env.contains_key("SANCTUM_AWS_ENDPOINT"));
        assert!(!env.contains_key("SANCTUM_BUCKET_OWNERS"));
    }
}
