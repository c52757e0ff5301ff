//! The recordings bucket's policy: TLS only, no upload asking for another encryption than
//! the bucket's, and for a write-once bucket (the audit bucket) no PutObject without
//! `If-None-Match`.

use serde_json::{Value, json};

use super::DesiredBucket;

/// The bucket policy. No access without TLS. No upload that asks for another encryption
/// than the bucket's own (SSE-KMS under the tenant's key, or SSE-S3 with the local
/// provider): an object under a foreign KMS key would escape crypto-shredding, and one
/// under SSE-S3 the tenant's key entirely. Each such condition also requires the header
/// to be present (`Null: false`), so an upload without encryption headers gets the
/// bucket default. With `write_once`, a PutObject
/// without `If-None-Match` is refused, so an existing object can never be replaced.
pub fn policy(want: &DesiredBucket) -> Value {
    let arn = format!("arn:aws:s3:::{}", want.name);
    let objects = format!("{arn}/*");
    let (algorithm, kms_key) = match &want.kms_key_arn {
        Some(key) => ("aws:kms", Some(key.as_str())),
        None => ("AES256", None),
    };
    let mut statements = vec![
        json!({
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, objects.clone()],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }),
        json!({
            "Sid": "DenyForeignEncryption",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects.clone(),
            "Condition": {
                "Null": {"s3:x-amz-server-side-encryption": "false"},
                "StringNotEquals": {"s3:x-amz-server-side-encryption": algorithm}
            }
        }),
    ];
    if let Some(key) = kms_key {
        statements.push(json!({
            "Sid": "DenyForeignKmsKey",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects.clone(),
            "Condition": {
                "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key}
            }
        }));
    }
    if want.write_once {
        statements.push(json!({
            "Sid": "DenyOverwrites",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {"Null": {"s3:if-none-match": "true"}}
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(kms_key_arn: Option<&str>, write_once: bool) -> DesiredBucket {
        DesiredBucket {
            name: "b".into(),
            region: "us-east-1".into(),
            tenant: "clinic-a".into(),
            tenant_uid: "uid".into(),
            reserved: vec![],
            configured: false,
            kms_key_arn: kms_key_arn.map(str::to_string),
            retention_days: 30,
            object_lock: None,
            write_once,
        }
    }

    fn statement<'a>(p: &'a Value, sid: &str) -> Option<&'a Value> {
        p["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| s["Sid"] == sid)
    }

    #[test]
    fn policy_denies_plain_http_on_bucket_and_objects() {
        let p = policy(&desired(None, false));
        let tls = statement(&p, "DenyInsecureTransport").expect("TLS statement");
        assert_eq!(tls["Effect"], "Deny");
        assert_eq!(tls["Action"], "s3:*");
        assert_eq!(tls["Condition"]["Bool"]["aws:SecureTransport"], "false");
        assert_eq!(
            tls["Resource"],
            serde_json::json!(["arn:aws:s3:::b", "arn:aws:s3:::b/*"])
        );
    }

    #[test]
    fn policy_refuses_uploads_that_ask_for_another_encryption() {
        let arn = "arn:aws:kms:us-east-1:123456789012:key/k";
        let p = policy(&desired(Some(arn), false));
        let algorithm = statement(&p, "DenyForeignEncryption").expect("algorithm");
        assert_eq!(
            algorithm["Condition"]["StringNotEquals"]["s3:x-amz-server-side-encryption"],
            "aws:kms"
        );
        assert_eq!(
            algorithm["Condition"]["Null"]["s3:x-amz-server-side-encryption"], "false",
            "an upload without the header gets the default"
        );
        let key = statement(&p, "DenyForeignKmsKey").expect("key");
        assert_eq!(
            key["Condition"]["StringNotEquals"]["s3:x-amz-server-side-encryption-aws-kms-key-id"],
            arn
        );
        assert_eq!(
            key["Condition"]["Null"]["s3:x-amz-server-side-encryption-aws-kms-key-id"],
            "false"
        );
        assert_eq!(key["Resource"], "arn:aws:s3:::b/*");
        let local = policy(&desired(None, false));
        assert_eq!(
            statement(&local, "DenyForeignEncryption").expect("algorithm")["Condition"]["StringNotEquals"]
                ["s3:x-amz-server-side-encryption"],
            "AES256"
        );
        assert!(statement(&local, "DenyForeignKmsKey").is_none());
        assert!(
            statement(&local, "DenyOverwrites").is_none(),
            "recordings are versioned, not write-once"
        );
    }

    #[test]
    fn a_write_once_bucket_refuses_puts_without_if_none_match() {
        let p = policy(&desired(None, true));
        let once = statement(&p, "DenyOverwrites").expect("write-once statement");
        assert_eq!(once["Action"], "s3:PutObject");
        assert_eq!(once["Condition"]["Null"]["s3:if-none-match"], "true");
    }
}
