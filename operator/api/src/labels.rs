//! Label and annotation keys Sanctum writes, shared so selectors never drift apart.

/// Marks every object the operator owns, so it can be found and garbage-collected.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "sanctum";
/// Standard application name label, used by dashboards and `kubectl get -l`.
pub const NAME: &str = "app.kubernetes.io/name";
/// Standard instance label; Sanctum uses the tenant name.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// Standard component label (for example `media-node`).
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// The tenant an object belongs to; the key of every per-tenant selector.
pub const TENANT: &str = "sanctum.dev/tenant";
/// The media region a Deployment, Service, PDB or HPA serves.
pub const REGION: &str = "sanctum.dev/region";
/// On the tenant namespace: whether Recordings there must carry consent (`required`).
pub const RECORDING_CONSENT: &str = "sanctum.dev/recording-consent";
/// On the tenant namespace: whether the tenant allows recordings at all (`enabled`/`disabled`).
pub const RECORDING: &str = "sanctum.dev/recording";
