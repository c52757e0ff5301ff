//! The operator's logging: the shared setup of `sanctum-telemetry` with the operator's
//! default filter (kube's own chatter at warnings only).

pub use sanctum_telemetry::LogFormat;

/// Installs the global subscriber; `RUST_LOG` overrides the default filter.
pub fn init(format: LogFormat) {
    sanctum_telemetry::init(format, "info,kube=warn");
}
