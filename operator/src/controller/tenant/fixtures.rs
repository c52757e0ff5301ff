//! Test fixtures: the documented example tenant, as the API server would return it.

use sanctum_api::{KeyProvider, VideoTenant};

use super::build::TenantKeyRef;

use super::validate::{Validated, validate};

const EXAMPLE: &str = include_str!("../../../../docs/examples/videotenant.yaml");

/// The example tenant renamed to `name`, with the uid and generation the API server sets.
pub fn tenant(name: &str) -> VideoTenant {
    let mut t: VideoTenant = serde_yaml::from_str(EXAMPLE).expect("the example tenant parses");
    t.metadata.name = Some(name.to_string());
    t.metadata.uid = Some("6f1e0c1e-0000-4000-8000-000000000001".to_string());
    t.metadata.generation = Some(1);
    t
}

/// [`tenant`], validated.
pub fn validated(name: &str) -> Validated {
    validate(
        &tenant(name),
        "sanctum-system",
        &[
            sanctum_api::KeyProvider::Aws,
            sanctum_api::KeyProvider::Local,
        ],
    )
    .expect("the example tenant is valid")
}

/// The key reference a local-provider tenant gets.
pub fn key() -> TenantKeyRef {
    TenantKeyRef {
        provider: KeyProvider::Local,
        arn: "local".into(),
        version: 1,
        secret: "tenant-data-key".into(),
    }
}
