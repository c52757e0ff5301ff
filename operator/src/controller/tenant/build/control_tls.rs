//! The tenant's control CA and the certificates of mutual TLS between the operator and
//! the tenant's media nodes on their control port.
//!
//! One CA per tenant, made once and kept in the operator's namespace with the operator's
//! client certificate; the media nodes' server certificate (for
//! [`sanctum_api::control::server_name`], which the operator checks whatever address it
//! dials) is issued from it into the tenant namespace and re-issued before it expires.
//! A media node accepts control connections only with a client certificate of this CA;
//! the operator accepts only a server certificate of it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::namespaced_meta;
use crate::controller::tenant::validate::Validated;

/// Key of the CA certificate in both Secrets.
pub const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
/// Key of the operator's client certificate.
pub const CLIENT_CERT: &str = "client.crt";
/// Key of the operator's client key.
pub const CLIENT_KEY: &str = "client.key";
/// Annotation on the node Secret: when its certificate stops being valid.
pub const NOT_AFTER: &str = "sanctum.dev/not-after";
/// Days a node certificate is valid; it is re-issued when fewer than [`RENEW_DAYS`] remain.
const NODE_DAYS: i64 = 90;
/// Days before expiry at which the node certificate is re-issued.
pub const RENEW_DAYS: i64 = 30;
/// Days the CA and the operator's client certificate are valid.
const CA_DAYS: i64 = 3650;

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Key generation or signing failed.
    #[error("cannot make the control certificates: {0}")]
    Make(#[from] rcgen::Error),
    /// The CA Secret does not hold a usable CA.
    #[error("the control CA Secret is unusable: {0}")]
    Unreadable(String),
}

/// Name of the tenant's control CA Secret in the operator's namespace: tenant name and a
/// hash of its uid, so a later tenant of the same name never shares it.
pub fn ca_secret_name(v: &Validated) -> String {
    ca_secret_name_for(&v.name, &v.owner.uid)
}

/// [`ca_secret_name`] from a tenant's name and uid.
pub fn ca_secret_name_for(tenant: &str, uid: &str) -> String {
    let suffix = crate::hash::short_sha256(uid.as_bytes(), 4);
    format!("recording-control-ca-{tenant}-{suffix}")
}

fn validity(
    params: &mut CertificateParams,
    now: Timestamp,
    days: i64,
) -> Result<Timestamp, TlsError> {
    let not_before = now - SignedDuration::from_hours(1);
    let not_after = now + SignedDuration::from_hours(24 * days);
    let to = |t: Timestamp| {
        time::OffsetDateTime::from_unix_timestamp(t.as_second())
            .map_err(|e| TlsError::Unreadable(e.to_string()))
    };
    params.not_before = to(not_before)?;
    params.not_after = to(not_after)?;
    Ok(not_after)
}

/// A new CA and operator client certificate, as the operator-namespace Secret (created
/// once, no owner: it is deleted with the tenant by cleanup).
pub fn generate_ca_secret(
    v: &Validated,
    operator_namespace: &str,
    now: Timestamp,
) -> Result<Secret, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, format!("sanctum control CA {}", v.name));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca, now, CA_DAYS)?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);
    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::default();
    client
        .distinguished_name
        .push(DnType::CommonName, "sanctum-operator");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut client, now, CA_DAYS)?;
    let client_cert = client.signed_by(&client_key, &issuer)?;
    let mut labels = super::common_labels(v);
    labels.insert("sanctum.dev/tenant-uid".into(), v.owner.uid.clone());
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(ca_secret_name(v)),
            namespace: Some(operator_namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([
            (CA_CERT.to_string(), ByteString(ca_cert.pem().into_bytes())),
            (
                CA_KEY.to_string(),
                ByteString(ca_key.serialize_pem().into_bytes()),
            ),
            (
                CLIENT_CERT.to_string(),
                ByteString(client_cert.pem().into_bytes()),
            ),
            (
                CLIENT_KEY.to_string(),
                ByteString(client_key.serialize_pem().into_bytes()),
            ),
        ])),
        ..Default::default()
    })
}

fn field<'a>(secret: &'a Secret, key: &str) -> Result<&'a str, TlsError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| std::str::from_utf8(&b.0).ok())
        .ok_or_else(|| TlsError::Unreadable(format!("no {key}")))
}

/// Whether the node Secret was issued by this CA and stays valid beyond the renewal window.
pub fn node_secret_current(node: &Secret, ca: &Secret, now: Timestamp) -> bool {
    let same_ca =
        field(node, CA_CERT).ok() == field(ca, CA_CERT).ok() && field(ca, CA_CERT).is_ok();
    let not_after = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NOT_AFTER))
        .and_then(|t| t.parse::<Timestamp>().ok());
    same_ca
        && not_after
            .is_some_and(|t| t.duration_since(now) > SignedDuration::from_hours(24 * RENEW_DAYS))
}

/// A node server certificate issued by the CA in `ca`, as the tenant-namespace Secret the
/// media nodes mount (`ca.crt`, `tls.crt`, `tls.key`).
pub fn issue_node_secret(v: &Validated, ca: &Secret, now: Timestamp) -> Result<Secret, TlsError> {
    let ca_key = KeyPair::from_pem(field(ca, CA_KEY)?)?;
    let ca_pem = field(ca, CA_CERT)?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, &ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![sanctum_api::control::server_name(&v.name)])?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("media nodes of {}", v.name));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let not_after = validity(&mut params, now, NODE_DAYS)?;
    let cert = params.signed_by(&key, &issuer)?;
    let mut metadata = namespaced_meta(v, sanctum_api::control::NODE_TLS_SECRET);
    metadata.annotations = Some(BTreeMap::from([(
        NOT_AFTER.to_string(),
        not_after.to_string(),
    )]));
    Ok(Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (CA_CERT.to_string(), ByteString(ca_pem.as_bytes().to_vec())),
            ("tls.crt".to_string(), ByteString(cert.pem().into_bytes())),
            (
                "tls.key".to_string(),
                ByteString(key.serialize_pem().into_bytes()),
            ),
        ])),
        ..Default::default()
    })
}

/// The operator's side: CA certificate, client certificate and key, PEM.
pub struct ClientIdentity {
    /// CA certificate (trust anchor for the nodes' certificate).
    pub ca: Vec<u8>,
    /// Client certificate and key, PEM, concatenated.
    pub identity: Vec<u8>,
}

/// What the operator presents and trusts, from the CA Secret.
pub fn client_identity(ca: &Secret) -> Result<ClientIdentity, TlsError> {
    let mut identity = field(ca, CLIENT_CERT)?.as_bytes().to_vec();
    identity.extend_from_slice(field(ca, CLIENT_KEY)?.as_bytes());
    Ok(ClientIdentity {
        ca: field(ca, CA_CERT)?.as_bytes().to_vec(),
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn the_node_certificate_is_issued_by_the_tenants_ca_and_renewed_in_time() {
        let v = fixtures::validated("clinic-a");
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().expect("time");
        let ca = generate_ca_secret(&v, "sanctum-system", now).expect("ca");
        assert_eq!(ca.immutable, Some(true));
        assert!(ca.metadata.owner_references.is_none());
        let node = issue_node_secret(&v, &ca, now).expect("node");
        assert_eq!(node.metadata.name.as_deref(), Some("media-control-tls"));
        let data = node.data.as_ref().expect("data");
        assert!(
            !data.contains_key(CA_KEY),
            "the CA's key never reaches the tenant namespace"
        );
        assert!(!data.contains_key(CLIENT_KEY), "nor the operator's");
        assert!(node_secret_current(&node, &ca, now));
        let later: Timestamp = "2026-08-15T00:00:00Z".parse().expect("time");
        assert!(
            !node_secret_current(&node, &ca, later),
            "renewed within 30 days of expiry"
        );
        let other = generate_ca_secret(&v, "sanctum-system", now).expect("ca");
        assert!(
            !node_secret_current(&node, &other, now),
            "another CA's certificate is replaced"
        );
        let identity = client_identity(&ca).expect("identity");
        assert!(String::from_utf8_lossy(&identity.identity).contains("PRIVATE KEY"));
    }
}
