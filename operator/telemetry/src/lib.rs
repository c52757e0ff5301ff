//! Logging setup shared by both binaries: structured JSON by default, human-readable text
//! on request, `RUST_LOG` over a per-binary default filter, and room for one more layer
//! that sees events whatever `RUST_LOG` prints (the media node's audit trail).
//!
//! Log lines carry identifiers only (tenant, object and session ids); never PHI or key
//! material. Nothing here knows either binary.

#![forbid(unsafe_code)]

use clap::ValueEnum;
use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*};

/// Output format of the logs.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines.
    Json,
    /// Human-readable lines, for local work.
    Text,
}

/// Installs the global subscriber; `RUST_LOG` overrides `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) {
    init_with(
        format,
        default_filter,
        None::<tracing_subscriber::layer::Identity>,
    );
}

/// [`init`], plus `extra`, which is not filtered by `RUST_LOG` (it filters for itself).
pub fn init_with<L>(format: LogFormat, default_filter: &str, extra: Option<L>)
where
    L: Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(extra);
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Text => registry
            .with(fmt::layer().compact().with_filter(filter))
            .init(),
    }
}
