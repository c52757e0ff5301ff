//! A media node started in-process on loopback with fresh keys, and token helpers.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use sanctum_media_client::{Kind, Options, Session, Transport};
use sanctum_media_node::keys::{KeyConfig, Provider};
use sanctum_media_node::server::{self, Running, ServeConfig, Tls};
use sanctum_media_node::token::{self, Grant, RoleClaim};

pub const TENANT: &str = "clinic-a";
/// The node's name, which control tokens must name.
pub const NODE_NAME: &str = "media-test-0";
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub struct Node {
    pub running: Running,
    pub base: String,
    pub private_pem: Vec<u8>,
    /// The tenant's control private key (the operator's half).
    pub control_pem: Vec<u8>,
    /// `https://<control name>:<port>` of the control listener.
    pub control_base: String,
    /// The operator's side of control mutual TLS: its client certificate, trust in the
    /// tenant's control CA, and the control name pinned to the listener.
    pub control_http: reqwest::Client,
    /// The control CA's certificate (PEM), for clients built by tests.
    pub control_ca: Vec<u8>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub struct NodeOptions {
    pub idle: Duration,
    pub max_session: Duration,
    pub drain: Duration,
    pub tls: bool,
    pub limits: sanctum_media_node::state::Limits,
    /// The region's other nodes (room placement); none: the node is alone.
    pub peers: Option<Vec<std::net::SocketAddr>>,
    /// A signaling port to listen on (0: any).
    pub port: u16,
    /// The tenant's join-token key pair (PKCS#8, SPKI), to share one tenant between nodes;
    /// a fresh one when unset.
    pub join_key: Option<(Vec<u8>, Vec<u8>)>,
    /// The signaling certificate and key (PEM), to share them between nodes; a fresh
    /// self-signed one (with `tls`) when unset.
    pub tls_identity: Option<(String, String)>,
    /// TURN credentials handed out with answers.
    pub turn: Option<sanctum_media_node::turn::TurnConfig>,
    /// Where recordings are uploaded: a loopback address (none: nothing may record).
    pub s3_endpoint: Option<String>,
}

/// A self-signed signaling certificate for `localhost` and 127.0.0.1, as (cert, key) PEM.
pub fn tls_identity() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

/// A port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((LOOPBACK, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            idle: Duration::from_secs(30),
            max_session: Duration::from_secs(600),
            drain: Duration::from_secs(1),
            tls: false,
            limits: Default::default(),
            peers: None,
            port: 0,
            join_key: None,
            tls_identity: None,
            turn: None,
            s3_endpoint: None,
        }
    }
}

/// A fresh Ed25519 key pair as (PKCS#8 PEM, SPKI PEM).
pub fn keypair() -> (Vec<u8>, Vec<u8>) {
    let (private, public) = token::generate_keypair().expect("key pair");
    (private.to_vec(), public)
}

impl Node {
    pub async fn start(o: NodeOptions) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let (private_pem, public_pem) = o.join_key.clone().unwrap_or_else(keypair);
        let write = |name: &str, bytes: &[u8]| -> PathBuf {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).expect("write");
            p
        };
        let public_key = write("public.pem", &public_pem);
        let (control_pem, control_public) = keypair();
        let control_public_key = write("control.pem", &control_public);
        let master = sanctum_keywrap::random_key().expect("master");
        let master_file = write("master.key", &master);
        let tenant_key_file = write(
            "tenant-key",
            &sanctum_keywrap::new_local_data_key(&master, TENANT).expect("wrap"),
        );
        let control = ControlPki::new(TENANT);
        let control_dir = dir.path().join("control-tls");
        std::fs::create_dir(&control_dir).expect("control dir");
        std::fs::write(control_dir.join("ca.crt"), &control.ca).expect("write");
        std::fs::write(control_dir.join("tls.crt"), &control.node_cert).expect("write");
        std::fs::write(control_dir.join("tls.key"), &control.node_key).expect("write");
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10));
        let tls = if o.tls {
            let (cert_pem, key_pem) = o.tls_identity.clone().unwrap_or_else(tls_identity);
            http = http.tls_certs_only([
                reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("cert")
            ]);
            Tls::Files {
                cert: write("tls.crt", cert_pem.as_bytes()),
                key: write("tls.key", key_pem.as_bytes()),
            }
        } else {
            Tls::InsecureHttp
        };
        let any = |port| SocketAddr::new(LOOPBACK, port);
        let running = server::start(ServeConfig {
            metrics: sanctum_media_node::metrics::Metrics::default(),
            signaling_addr: any(o.port),
            media_addr: any(0),
            advertise_addr: None,
            media_tcp_addr: Some(any(0)),
            tcp_advertise_addr: None,
            turn: o.turn.clone(),
            metrics_addr: any(0),
            tls: tls.clone(),
            keys: KeyConfig {
                tenant: TENANT.into(),
                public_key,
                max_token_lifetime: Duration::from_secs(3600),
                provider: Provider::Local,
                tenant_key: sanctum_media_node::keys::TenantKeySource::File {
                    path: tenant_key_file,
                    version: 1,
                },
                control_public_key: Some(control_public_key),
                node_name: NODE_NAME.into(),
                local_master_key_file: Some(master_file),
                tenant_uid: None,
            },
            idle_timeout: o.idle,
            max_session: o.max_session,
            cors_origins: vec![],
            drain: o.drain,
            storage: Default::default(),
            // The local key provider, and recordings only to a loopback endpoint: no call
            // ever leaves the machine.
            cloud: sanctum_cloud::Clients::connect(&sanctum_cloud::CloudConfig {
                endpoint: o.s3_endpoint.clone(),
                region: "us-east-1".into(),
                force_path_style: false,
                owners: sanctum_cloud::OwnerSetting::Unchecked,
            })
            .await
            .expect("clients without a network call"),
            limits: o.limits,
            placement: o.peers.clone().map(|peers| {
                sanctum_media_node::placement::PlacementConfig {
                    peers: sanctum_media_node::placement::Peers::Static(peers),
                    me: None,
                }
            }),
            control: Some(server::ControlListener {
                addr: any(0),
                tls_dir: control_dir,
            }),
        })
        .await
        .expect("node starts");
        let base = match tls {
            Tls::Files { .. } => format!("https://localhost:{}", running.signaling_addr.port()),
            Tls::InsecureHttp => format!("http://{}", running.signaling_addr),
        };
        let control_addr = running.control_addr.expect("control listener");
        let name = sanctum_api::control::server_name(TENANT);
        let control_http = control.client(&name, control_addr, true);
        let node = Node {
            running,
            base,
            private_pem,
            control_pem,
            control_base: format!("https://{name}:{}", control_addr.port()),
            control_http,
            control_ca: control.ca.clone(),
            dir,
            http: http.build().expect("client"),
        };
        node.wait_ready().await;
        node
    }

    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            if self.get_health("/readyz").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node not ready");
    }

    pub async fn get_health(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.running.metrics_addr);
        match reqwest::get(url).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    /// A control API request signed for exactly itself by the tenant's control key:
    /// its status and JSON body (`Null` when there is none).
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let token = sanctum_control::mint(
            &self.control_pem,
            TENANT,
            NODE_NAME,
            method.as_str(),
            path,
            body.unwrap_or_default(),
        )
        .expect("mint");
        let (status, json, _) = self.control_call(method, path, Some(&token), body).await;
        (status, json)
    }

    /// A control API request with `token` (or none): its status, JSON body (`Null` when
    /// there is none) and whether it was challenged (`WWW-Authenticate`).
    pub async fn control_call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (reqwest::StatusCode, serde_json::Value, bool) {
        let mut request = self
            .control_http
            .request(method, format!("{}{path}", self.control_base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        let response = request.send().await.expect("control request");
        let status = response.status();
        let challenged = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .is_some();
        let json = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, json, challenged)
    }

    /// The value of a metric line starting with `prefix` (name and labels).
    pub async fn metric(&self, prefix: &str) -> f64 {
        let (_, text) = self.get_health("/metrics").await;
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    pub fn token(&self, room: &str, user: &str, role: RoleClaim) -> String {
        token::mint(
            &self.private_pem,
            &Grant {
                tenant: TENANT.into(),
                room: room.into(),
                user: user.into(),
                role,
                ttl: Duration::from_secs(300),
            },
        )
        .expect("mint")
    }

    pub fn options(&self, room: &str, token: String) -> Options {
        Options {
            base: self.base.clone(),
            room: room.into(),
            token,
            layer: None,
            local_ip: LOOPBACK,
            fps: 30,
            frame_bytes: 1200,
            video_slots: 1,
            transport: Transport::Udp,
        }
    }

    pub async fn join(
        &self,
        kind: Kind,
        room: &str,
        user: &str,
        role: RoleClaim,
    ) -> Result<Session, sanctum_media_client::ClientError> {
        let opts = self.options(room, self.token(room, user, role));
        sanctum_media_client::connect(&self.http, kind, &opts).await
    }
}

/// A tenant's control PKI as the operator makes it (build/control_tls.rs): a CA, the
/// nodes' server certificate for the control name, the operator's client certificate.
pub struct ControlPki {
    pub ca: Vec<u8>,
    pub node_cert: Vec<u8>,
    pub node_key: Vec<u8>,
    pub client: Vec<u8>,
}

impl ControlPki {
    pub fn new(tenant: &str) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, format!("control CA {tenant}"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca, &ca_key);
        let node_key = KeyPair::generate().expect("key");
        let mut node =
            CertificateParams::new(vec![sanctum_api::control::server_name(tenant)]).expect("name");
        node.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let node_cert = node
            .signed_by(&node_key, &issuer)
            .expect("node certificate");
        let client_key = KeyPair::generate().expect("key");
        let mut client = CertificateParams::default();
        client
            .distinguished_name
            .push(DnType::CommonName, "sanctum-operator");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client
            .signed_by(&client_key, &issuer)
            .expect("client certificate");
        ControlPki {
            ca: ca_cert.pem().into_bytes(),
            node_cert: node_cert.pem().into_bytes(),
            node_key: node_key.serialize_pem().into_bytes(),
            client: [client_cert.pem(), client_key.serialize_pem()]
                .concat()
                .into_bytes(),
        }
    }

    /// A client trusting this CA for `name` pinned to `addr`, with or without the client
    /// certificate.
    pub fn client(&self, name: &str, addr: SocketAddr, with_certificate: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca).expect("CA")])
            .resolve(name, addr);
        if with_certificate {
            builder =
                builder.identity(reqwest::Identity::from_pem(&self.client).expect("identity"));
        }
        builder.build().expect("client")
    }
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}
