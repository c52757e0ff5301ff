//! Starting and stopping a media node: sockets, key loading, signaling over TLS, the
//! health and metrics endpoint, and the drain on shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use sanctum_media_core::EndReason;
use tokio::net::UdpSocket;

use crate::control;
use crate::keys::{self, KeyConfig, Keys};
use crate::media::{self, MediaHandle, MediaSockets};
use crate::metrics::Metrics;
use crate::placement::{Placement, PlacementConfig, PlacementError};
use crate::recording::{RecorderConfig, Recorders};
use crate::signaling;
use crate::state::{AppState, Limits};
use crate::token::Revoked;

/// How signaling is served.
#[derive(Clone, Debug)]
pub enum Tls {
    /// HTTPS with this certificate chain and key (PEM files, reloaded when they change).
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Plain HTTP: local tests only.
    InsecureHttp,
}

/// Everything a node needs to run.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Metrics served on the metrics address (shared with the session trail).
    pub metrics: Metrics,
    /// Signaling listen address.
    pub signaling_addr: SocketAddr,
    /// Media UDP listen address.
    pub media_addr: SocketAddr,
    /// Address peers reach the media socket at; `None` uses the bound address.
    pub advertise_addr: Option<SocketAddr>,
    /// ICE-TCP listen address (`None`: no ICE-TCP candidate).
    pub media_tcp_addr: Option<SocketAddr>,
    /// Address peers reach the ICE-TCP listener at; `None` uses the advertised media
    /// address's IP with the bound TCP port; port 0 means the bound port.
    pub tcp_advertise_addr: Option<SocketAddr>,
    /// Health and metrics listen address.
    pub metrics_addr: SocketAddr,
    /// Signaling transport.
    pub tls: Tls,
    /// Keys to load.
    pub keys: KeyConfig,
    /// Idle limit.
    pub idle_timeout: Duration,
    /// Session length limit.
    pub max_session: Duration,
    /// Web origins allowed to call signaling.
    pub cors_origins: Vec<String>,
    /// Longest wait for sessions to end after SIGTERM before they are ended.
    pub drain: Duration,
    /// Where recordings go.
    pub storage: StorageConfig,
    /// KMS and S3 clients (tenant key, recordings), made once by the caller.
    pub cloud: sanctum_cloud::Clients,
    /// Caps on concurrent sessions.
    pub limits: Limits,
    /// How rooms find their node among the region's (`None`: this node alone).
    pub placement: Option<PlacementConfig>,
    /// The control API's own listener (mutual TLS); `None` serves no control API.
    pub control: Option<ControlListener>,
    /// TURN service handed to clients (`None`: no TURN).
    pub turn: Option<crate::turn::TurnConfig>,
}

/// Where the control API listens and the certificates it uses: `ca.crt` (the tenant's
/// control CA, which must have issued the operator's client certificate), `tls.crt` and
/// `tls.key` (this node's), from the Secret the operator makes.
#[derive(Clone, Debug)]
pub struct ControlListener {
    /// Listen address.
    pub addr: SocketAddr,
    /// Directory holding `ca.crt`, `tls.crt`, `tls.key`.
    pub tls_dir: PathBuf,
}

/// How recordings reach the tenant bucket.
#[derive(Clone, Debug, Default)]
pub struct StorageConfig {
    /// KMS key for SSE-KMS on recording objects; `None` uses SSE-S3.
    pub kms_key_id: Option<String>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error("cannot load the TLS certificate: {0}")]
    Tls(std::io::Error),
    /// The control certificates are unusable.
    #[error("cannot load the control API's certificates: {0}")]
    ControlTls(String),
    /// The media socket is bound to a wildcard address and no advertised address is set.
    #[error("set --media-advertise-addr (or POD_IP): peers cannot reach {0}")]
    NoAdvertiseAddr(SocketAddr),
    /// Room placement could not be set up.
    #[error(transparent)]
    Placement(PlacementError),
    /// The TURN settings are unusable.
    #[error(transparent)]
    Turn(#[from] crate::turn::TurnError),
}

/// A started node.
pub struct Running {
    /// Where signaling listens.
    pub signaling_addr: SocketAddr,
    /// Where media is received.
    pub media_addr: SocketAddr,
    /// Where ICE-TCP connections are accepted, when enabled.
    pub media_tcp_addr: Option<SocketAddr>,
    /// Where health and metrics listen.
    pub metrics_addr: SocketAddr,
    /// Where the control API listens, when configured.
    pub control_addr: Option<SocketAddr>,
    /// Metrics, for tests and benchmarks.
    pub metrics: Metrics,
    /// The SFU driver.
    pub media: MediaHandle,
    /// Recordings of this node.
    pub recorders: Recorders,
    draining: Arc<AtomicBool>,
    drain: Duration,
    signaling: Handle<SocketAddr>,
    control: Option<Handle<SocketAddr>>,
    health: Handle<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn bind_tcp(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    let l =
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok(l)
}

/// Binds every socket, starts loading keys, and serves.
pub async fn start(cfg: ServeConfig) -> Result<Running, StartError> {
    // One process-wide TLS provider: aws-lc-rs, as everywhere in Sanctum.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let udp = UdpSocket::bind(cfg.media_addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.media_addr,
            source,
        })?;
    let media_addr = udp.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.media_addr,
        source,
    })?;
    let advertised = match cfg.advertise_addr {
        Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), media_addr.port()),
        Some(a) => a,
        None if media_addr.ip().is_unspecified() => {
            return Err(StartError::NoAdvertiseAddr(media_addr));
        }
        None => media_addr,
    };
    if let Some(turn) = &cfg.turn {
        turn.validate()?;
    }
    let tcp = match cfg.media_tcp_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::from_std(bind_tcp(addr)?)
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            let offered = match cfg.tcp_advertise_addr {
                Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), bound.port()),
                Some(a) => a,
                None => SocketAddr::new(advertised.ip(), bound.port()),
            };
            Some((listener, offered))
        }
        None => None,
    };
    let media_tcp_addr = match &tcp {
        Some((listener, _)) => listener.local_addr().ok(),
        None => None,
    };
    let metrics = cfg.metrics.clone();
    let recorders = Recorders::new(RecorderConfig {
        tenant: cfg.keys.tenant.clone(),
        s3: cfg.cloud.s3.clone(),
        kms_key_id: cfg.storage.kms_key_id.clone(),
    });
    metrics.watch_recorders(Arc::new(recorders.clone()));
    let (media, driver) = media::spawn(
        MediaSockets {
            udp,
            advertised,
            tcp,
        },
        cfg.idle_timeout,
        cfg.max_session,
        metrics.clone(),
        recorders.clone(),
    );

    let keys: Arc<OnceLock<Keys>> = Arc::new(OnceLock::new());
    let loader = tokio::spawn(load_keys(
        cfg.keys.clone(),
        cfg.cloud.kms.clone(),
        keys.clone(),
    ));
    let draining = Arc::new(AtomicBool::new(false));
    let listener = bind_tcp(cfg.signaling_addr)?;
    let signaling_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.signaling_addr,
        source,
    })?;
    let placement = match &cfg.placement {
        Some(placement) => {
            let certificate = match &cfg.tls {
                Tls::Files { cert, .. } => Some(cert.clone()),
                Tls::InsecureHttp => None,
            };
            let placement = Placement::new(signaling_addr, placement, certificate)
                .map_err(StartError::Placement)?;
            tracing::info!(me = %placement.me(), "rooms are placed across the region's nodes");
            Some(Arc::new(placement))
        }
        None => None,
    };

    let state = AppState {
        media: media.clone(),
        keys: keys.clone(),
        revoked: Arc::new(Revoked::default()),
        limits: cfg.limits,
        metrics: metrics.clone(),
        draining: draining.clone(),
        recorders: recorders.clone(),
        consent: Arc::default(),
        placement,
        turn: cfg.turn.clone().map(Arc::new),
    };
    let app = signaling::router(state.clone(), &cfg.cors_origins).merge(crate::page::router());
    let control = match &cfg.control {
        Some(listen) => Some(serve_control(listen, control::router(state)).await?),
        None => None,
    };
    let signaling = Handle::new();
    let mut tasks = vec![driver, loader];
    match &cfg.tls {
        Tls::Files { cert, key } => {
            let tls = RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(StartError::Tls)?;
            tasks.push(tokio::spawn(reload_certificates(
                tls.clone(),
                cert.clone(),
                key.clone(),
            )));
            let server = axum_server::from_tcp_rustls(listener, tls)
                .map_err(StartError::Tls)?
                .handle(signaling.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = server.serve(app.into_make_service()).await {
                    tracing::error!(error = %e, "signaling server failed");
                }
            }));
        }
        Tls::InsecureHttp => {
            tracing::warn!("signaling over plain HTTP: local tests only");
            let server = axum_server::from_tcp(listener)
                .map_err(|source| StartError::Bind {
                    addr: signaling_addr,
                    source,
                })?
                .handle(signaling.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = server.serve(app.into_make_service()).await {
                    tracing::error!(error = %e, "signaling server failed");
                }
            }));
        }
    }

    let health_listener = bind_tcp(cfg.metrics_addr)?;
    let metrics_addr = health_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: cfg.metrics_addr,
            source,
        })?;
    let health = Handle::new();
    let health_app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(HealthState {
            keys,
            draining: draining.clone(),
            metrics: metrics.clone(),
        });
    let health_server = axum_server::from_tcp(health_listener)
        .map_err(|source| StartError::Bind {
            addr: metrics_addr,
            source,
        })?
        .handle(health.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = health_server.serve(health_app.into_make_service()).await {
            tracing::error!(error = %e, "health server failed");
        }
    }));
    let (control_addr, control) = match control {
        Some((addr, handle, task)) => {
            tasks.push(task);
            (Some(addr), Some(handle))
        }
        None => (None, None),
    };
    tracing::info!(%signaling_addr, %media_addr, media_tcp_addr = ?media_tcp_addr, %metrics_addr, control_addr = ?control_addr, "media node started");
    Ok(Running {
        control_addr,
        control,
        signaling_addr,
        media_addr,
        media_tcp_addr,
        metrics_addr,
        metrics,
        media,
        recorders,
        draining,
        drain: cfg.drain,
        signaling,
        health,
        tasks,
    })
}

impl Running {
    /// Takes no new rooms from now on (readiness fails, so the Service stops sending new
    /// clients); the rooms it hosts keep their sessions and still admit joiners.
    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Graceful stop: drain, wait up to the drain time for live sessions to end, end the
    /// rest (peers get RTCP BYE and DTLS close_notify), then stop serving.
    pub async fn shutdown(self) {
        self.start_drain();
        let started = Instant::now();
        let live = self.media.sessions.live();
        tracing::info!(live, "draining sessions");
        while self.media.sessions.live() > 0 && started.elapsed() < self.drain {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Recordings are sealed before their sessions end, so nothing recorded is lost.
        let recorders = self.recorders.clone();
        let _ =
            tokio::task::spawn_blocking(move || recorders.stop_all(Duration::from_secs(20))).await;
        self.media.end_all(EndReason::Shutdown).await;
        self.signaling
            .graceful_shutdown(Some(Duration::from_secs(5)));
        if let Some(control) = &self.control {
            control.graceful_shutdown(Some(Duration::from_secs(1)));
        }
        self.health.graceful_shutdown(Some(Duration::from_secs(1)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        for t in self.tasks {
            t.abort();
        }
        tracing::info!("media node stopped");
    }
}

/// Serves the control API over mutual TLS: only a client certificate issued by the
/// tenant's control CA (the operator's) gets a connection at all.
async fn serve_control(
    listen: &ControlListener,
    app: Router,
) -> Result<(SocketAddr, Handle<SocketAddr>, tokio::task::JoinHandle<()>), StartError> {
    use rustls::pki_types::pem::PemObject;
    let read = |name: &str| {
        std::fs::read(listen.tls_dir.join(name))
            .map_err(|e| StartError::ControlTls(format!("{name}: {e}")))
    };
    let bad = |e: &dyn std::fmt::Display| StartError::ControlTls(e.to_string());
    let ca = rustls::pki_types::CertificateDer::pem_slice_iter(&read("ca.crt")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(&read("tls.crt")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(&read("tls.key")?).map_err(|e| bad(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots.add(cert).map_err(|e| bad(&e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| bad(&e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let listener = bind_tcp(listen.addr)?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen.addr,
        source,
    })?;
    let handle = Handle::new();
    let server =
        axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(Arc::new(config)))
            .map_err(StartError::Tls)?
            .handle(handle.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "control server failed");
        }
    });
    Ok((addr, handle, task))
}

/// Loads the keys (retrying until they are there), then keeps the join-token public keys
/// current: the operator publishes another key without restarting any node.
async fn load_keys(cfg: KeyConfig, kms: aws_sdk_kms::Client, slot: Arc<OnceLock<Keys>>) {
    loop {
        match keys::load(&cfg, &kms).await {
            Ok(k) => {
                tracing::info!(join_token_keys = ?k.verifier().key_ids().collect::<Vec<_>>(), "join-token and tenant keys loaded");
                let _ = slot.set(k);
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "keys not loaded; retrying in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
    let Some(keys) = slot.get() else { return };
    let unwrapper = keys::Unwrapper::new(&cfg, &kms);
    loop {
        tokio::time::sleep(KEY_RELOAD).await;
        match keys.reload_join_token_keys(&cfg) {
            Ok(Some(ids)) => tracing::info!(join_token_keys = ?ids, "join-token keys reloaded"),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "join-token keys not reloaded; keeping the ones in force")
            }
        }
        match keys.reload_tenant_key(&cfg, &unwrapper).await {
            Ok(Some(version)) => tracing::info!(
                key_version = version,
                "tenant key rotated: new recordings use this version"
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "newer tenant key not loaded; keeping the one in force")
            }
        }
    }
}

/// How often the join-token public keys and the tenant key versions are looked at again.
const KEY_RELOAD: Duration = Duration::from_secs(10);

/// Picks up a renewed certificate (cert-manager rotates the mounted Secret).
async fn reload_certificates(tls: RustlsConfig, cert: PathBuf, key: PathBuf) {
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last = (modified(&cert), modified(&key));
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let now = (modified(&cert), modified(&key));
        if now != last {
            match tls.reload_from_pem_file(&cert, &key).await {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::warn!(error = %e, "TLS certificate reload failed"),
            }
            last = now;
        }
    }
}

#[derive(Clone)]
struct HealthState {
    keys: Arc<OnceLock<Keys>>,
    draining: Arc<AtomicBool>,
    metrics: Metrics,
}

async fn readyz(State(s): State<HealthState>) -> impl IntoResponse {
    if s.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if s.keys.get().is_none() {
        (StatusCode::SERVICE_UNAVAILABLE, "keys not loaded")
    } else {
        (StatusCode::OK, "ready")
    }
}

async fn metrics_text(State(s): State<HealthState>) -> impl IntoResponse {
    if let Some(keys) = s.keys.get() {
        s.metrics
            .tenant_key_version
            .set(i64::from(keys.tenant_key().version));
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}
