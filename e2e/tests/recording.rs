//! Recordings end to end: the operator asks a real media-node process (configured from the
//! objects the operator generated) to record a room over the signed control API; the node
//! seals the WebM into the tenant bucket on the emulator; `decrypt` reads back the frames
//! that were sent. Also: consent refused, a tampered object refused, the integrity re-check,
//! retention deletes, legal hold keeps and blocks deletion, and a node killed mid-recording
//! leaves a Failed Recording (MediaNodeLost) and no upload behind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use sanctum_api::{Recording, RecordingPhase, VideoTenant};
use sanctum_e2e::{
    Cluster, Operator, audit_public_keys, cloud, example_tenant, free_local_port, unique,
    wait_condition, wait_for, with_logs, workspace_binary,
};
use sanctum_media_client::{Kind, Options, Session, Transport, connect, parse_frame};
use sanctum_operator::cloud::Cloud;
use sanctum_operator::cloud::objects::{delete_all_versions, list_keys};

/// Host name of the test's media node; the operator pins it to 127.0.0.1 (`--resolve`).
const NODE_HOST: &str = "media-node.sanctum-e2e.test";

/// A media-node process started with the tenant's generated configuration.
struct Node {
    child: tokio::process::Child,
    base: String,
    port: u16,
    /// The control API's port (mutual TLS with the tenant's control CA).
    control_port: u16,
    /// Health and metrics port.
    metrics: u16,
    /// The wrapped tenant key versions, as kubelet mounts the Secret for a pod.
    keys: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn bytes(secret: &Secret, key: &str) -> Result<Vec<u8>> {
    Ok(secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| format!("{} has no {key}", secret.name_any()))?
        .0
        .clone())
}

/// Writes the tenant's wrapped key versions (`v1`, `v2`, ...) into `dir`; returns the current one.
async fn write_tenant_keys(cluster: &Cluster, ns: &str, dir: &Path) -> Result<i32> {
    let secret = Api::<Secret>::namespaced(cluster.client.clone(), ns)
        .get("tenant-data-key")
        .await?;
    std::fs::create_dir_all(dir)?;
    for (name, value) in secret.data.clone().unwrap_or_default() {
        std::fs::write(dir.join(name), value.0)?;
    }
    Ok(secret
        .annotations()
        .get("sanctum.dev/current-key-version")
        .context("current version")?
        .parse()?)
}

/// Writes the tenant's `local` key-encryption key (the copy its media nodes mount) to `path`.
async fn write_master_key(cluster: &Cluster, ns: &str, path: &Path) -> Result<()> {
    let master = Api::<Secret>::namespaced(cluster.client.clone(), ns)
        .get("tenant-local-key")
        .await?;
    let key = master
        .data
        .as_ref()
        .context("master")?
        .values()
        .next()
        .context("key")?;
    std::fs::write(path, &key.0)?;
    Ok(())
}

async fn start_node(cluster: &Cluster, tenant: &VideoTenant, ns: &str) -> Result<(Node, Vec<u8>)> {
    let dir = tempfile::tempdir()?;
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), ns);
    let keys = dir.path().join("tenant-key");
    write_tenant_keys(cluster, ns, &keys).await?;
    let cm = Api::<ConfigMap>::namespaced(cluster.client.clone(), ns)
        .get("join-token-public-key")
        .await?;
    let data = cm.data.context("public keys")?;
    std::fs::write(dir.path().join("public.pem"), &data["public.pem"])?;
    std::fs::write(dir.path().join("control.pem"), &data["control.pem"])?;
    write_master_key(cluster, ns, &dir.path().join("master.key")).await?;
    let signing = bytes(&secrets.get("join-token-signing-key").await?, "private.pem")?;
    // The node's control certificate, as the operator generated it for the pods.
    let control_tls = dir.path().join("control-tls");
    std::fs::create_dir(&control_tls)?;
    let node_tls = secrets.get(sanctum_api::control::NODE_TLS_SECRET).await?;
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        std::fs::write(control_tls.join(file), bytes(&node_tls, file)?)?;
    }

    let port = free_local_port()?;
    let control_port = free_local_port()?;
    let metrics = free_local_port()?;
    let status = tenant.status.clone().unwrap_or_default();
    let child = tokio::process::Command::new(workspace_binary("sanctum-media-node")?)
        .args(["serve", "--insecure-http", "--log-format", "text"])
        .args(["--tenant", &tenant.name_any()])
        .args(["--audit-bucket", &audit_bucket(&tenant.name_any())])
        .args(["--node-name", "media-e2e-0", "--audit-flush-ms", "200"])
        .args(["--signaling-addr", &format!("127.0.0.1:{port}")])
        .args(["--media-udp-addr", "127.0.0.1:0"])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .args(["--key-provider", "local"])
        .arg("--tenant-key-dir")
        .arg(&keys)
        .arg("--join-token-public-key")
        .arg(dir.path().join("public.pem"))
        .arg("--control-public-key")
        .arg(dir.path().join("control.pem"))
        .args(["--control-addr", &format!("127.0.0.1:{control_port}")])
        .arg("--control-tls-dir")
        .arg(&control_tls)
        .arg("--local-master-key-file")
        .arg(dir.path().join("master.key"))
        .args([
            "--kms-key-arn",
            status.key_arn.as_deref().unwrap_or("local"),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for("media node ready", Duration::from_secs(30), || {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://127.0.0.1:{metrics}/readyz"))
                .send()
                .await;
            Ok(r.is_ok_and(|r| r.status().is_success()))
        }
    })
    .await?;
    Ok((
        Node {
            child,
            base,
            port,
            control_port,
            metrics,
            keys,
            _dir: dir,
        },
        signing,
    ))
}

/// What the endpoint controller would publish for the node (kwok runs no pods): the
/// operator finds media nodes through EndpointSlices of the media Services. Loopback IPs
/// are refused in EndpointSlices, so the test node is named by host name (`FQDN` type)
/// and the operator pins that name to loopback. The slice belongs to the tenant's media
/// Service and names the node's pod, as the operator requires of every control endpoint.
async fn publish_endpoint(cluster: &Cluster, tenant: &str, ns: &str, node: &Node) -> Result<()> {
    let services = Api::<Service>::namespaced(cluster.client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/component=media-node"))
        .await?;
    let service = services
        .items
        .first()
        .map(|s| s.name_any())
        .context("the tenant's media Service")?;
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "media-node-e2e", "labels": {
            "app.kubernetes.io/component": "media-node",
            "sanctum.dev/tenant": tenant,
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": "sanctum-e2e"}},
        "addressType": "FQDN",
        "endpoints": [{"addresses": [NODE_HOST], "conditions": {"ready": true},
                       "targetRef": {"kind": "Pod", "name": "media-e2e-0", "namespace": ns}}],
        "ports": [{"name": "https", "port": node.port, "protocol": "TCP", "appProtocol": "http"},
                  {"name": "control", "port": node.control_port, "protocol": "TCP"}]
    }))?;
    Api::<EndpointSlice>::namespaced(cluster.client.clone(), ns)
        .create(&PostParams::default(), &slice)
        .await
        .context("creating the EndpointSlice")?;
    Ok(())
}

fn recording(
    name: &str,
    room: &str,
    legal_hold: bool,
    retention: Option<i32>,
) -> Result<Recording> {
    let mut spec = serde_json::json!({
        "room": room,
        "consent": {"recordedBy": "host-1", "method": "Verbal", "givenAt": "2026-11-24T10:00:00Z"},
        "legalHold": legal_hold,
    });
    if let Some(days) = retention {
        spec["retentionDays"] = days.into();
    }
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "sanctum.dev/v1alpha1", "kind": "Recording",
        "metadata": {"name": name}, "spec": spec,
    }))?)
}

async fn wait_phase(api: &Api<Recording>, name: &str, phase: RecordingPhase) -> Result<Recording> {
    let mut last = None;
    for _ in 0..300 {
        let r = api.get(name).await?;
        let now = r.status.as_ref().and_then(|s| s.phase);
        if now == Some(phase) {
            return Ok(r);
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "recording {name} never reached {phase:?}; last status: {}",
        serde_json::to_string(&last.and_then(|r| r.status))?
    )
}

/// A str0m client of `room` on the node, over loopback UDP.
fn options(node: &Node, room: &str, token: String) -> Options {
    Options {
        base: node.base.clone(),
        room: room.to_string(),
        token,
        layer: None,
        local_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        fps: 30,
        frame_bytes: 1200,
        video_slots: 1,
        transport: Transport::Udp,
    }
}

/// Records `room` while publishing; returns the sealed Recording and the frames sent.
/// A str0m publisher sending numbered frames into `room` on the node, once connected.
async fn publish(node: &Node, signing: &[u8], tenant: &str, room: &str) -> Result<Session> {
    let opts = options(node, room, mint(signing, tenant, room)?);
    let publisher = connect(&reqwest::Client::new(), Kind::Publish, &opts).await?;
    wait_for("publisher connected", Duration::from_secs(20), || async {
        Ok(publisher.stats().connected)
    })
    .await?;
    Ok(publisher)
}

async fn record(
    api: &Api<Recording>,
    node: &Node,
    signing: &[u8],
    tenant: &str,
    name: &str,
    rec: Recording,
) -> Result<(Recording, u64)> {
    let publisher = publish(node, signing, tenant, &rec.spec.room).await?;
    let sealed = record_room(api, name, rec, Duration::from_secs(3)).await?;
    let (_, stats) = publisher.close().await?;
    Ok((sealed, stats.video_sent))
}

/// Creates `rec` for a room with a publisher, records for `length`, stops, and returns it
/// sealed.
async fn record_room(
    api: &Api<Recording>,
    name: &str,
    rec: Recording,
    length: Duration,
) -> Result<Recording> {
    api.create(&PostParams::default(), &rec).await?;
    wait_phase(api, name, RecordingPhase::Recording).await?;
    tokio::time::sleep(length).await;
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"stop": true}})),
    )
    .await?;
    wait_phase(api, name, RecordingPhase::Sealed).await
}

async fn wait_integrity(
    api: &Api<Recording>,
    name: &str,
    status: &str,
    reason: &str,
) -> Result<()> {
    wait_for(
        &format!("{name} IntegrityVerified={status}/{reason}"),
        Duration::from_secs(30),
        || async {
            let r = api.get(name).await?;
            Ok(r.status.iter().flat_map(|s| &s.conditions).any(|c| {
                c.type_ == "IntegrityVerified" && c.status == status && c.reason == reason
            }))
        },
    )
    .await
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn mint(private_pem: &[u8], tenant: &str, room: &str) -> Result<String> {
    sanctum_e2e::node::mint_token(private_pem, tenant, room, "host-1", "host")
}

async fn object(bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    let cloud = cloud().await?;
    match cloud.s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Ok(Some(o.body.collect().await?.into_bytes().to_vec())),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Video frame numbers in a WebM file, in order.
fn frames_in(webm: &Path) -> Result<Vec<u32>> {
    use matroska_demuxer::{Frame, MatroskaFile, TrackType};
    // From memory: matroska-demuxer takes the live-mode "unknown size" marker of the
    // Segment and Clusters for a literal length, and seeking a File past it fails.
    let mut file = MatroskaFile::open(std::io::Cursor::new(std::fs::read(webm)?))?;
    let video: Vec<u64> = file
        .tracks()
        .iter()
        .filter(|t| t.track_type() == TrackType::Video)
        .map(|t| t.track_number().get())
        .collect();
    let mut frame = Frame::default();
    let mut out = Vec::new();
    while file.next_frame(&mut frame)? {
        if video.contains(&frame.track) {
            let (n, _) = parse_frame(&frame.data).context("a recorded frame is not intact")?;
            out.push(n);
        }
    }
    Ok(out)
}

#[tokio::test]
async fn recordings_are_sealed_decryptable_retained_and_held() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("rec");
    // The node is reached by a host name pinned to loopback (see publish_endpoint).
    let op = Operator::start_with(
        &run,
        &run,
        &[
            "--resolve",
            &format!("{NODE_HOST}=127.0.0.1"),
            "--integrity-check-seconds",
            "2",
            "--audit-bucket",
            &audit_bucket(&run),
        ],
    )
    .await?;
    with_logs(&op, || async {
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        // No media-node pods in the cluster: the only node is the process this test
        // starts. (The control plane's simulated pods get addresses that are not on
        // this machine, and the operator would try them.)
        let mut tenant = example_tenant(&run, &run)?;
        tenant.spec.media.regions.truncate(1);
        tenant.spec.media.regions[0].replicas = 0;
        // A short tenant retention, so that the Recordings below can expire: a Recording
        // may lengthen the tenant's retention, never shorten it.
        tenant.spec.storage.retention_days = 30;
        tenants.create(&PostParams::default(), &tenant).await?;
        let tenant =
            wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(120)).await?;
        let ns = tenant
            .status
            .clone()
            .unwrap_or_default()
            .namespace
            .context("namespace")?;
        let (node, signing) = start_node(&cluster, &tenant, &ns)
            .await
            .context("starting the media node")?;
        publish_endpoint(&cluster, &run, &ns, &node).await?;
        let api = Api::<Recording>::namespaced(cluster.client.clone(), &ns);

        // Without consent, a tenant that requires it refuses the Recording at admission.
        let mut no_consent = recording("no-consent", "room-a", false, None)?;
        no_consent.spec.consent = None;
        let refused = api.create(&PostParams::default(), &no_consent).await;
        ensure!(
            matches!(&refused, Err(kube::Error::Api(e)) if e.code == 422 || e.code == 403),
            "a recording without consent was accepted: {refused:?}"
        );

        // Record, seal, read back.
        let (sealed, sent) = record(
            &api,
            &node,
            &signing,
            &run,
            "visit-1",
            recording("visit-1", "room-a", false, Some(30))?,
        )
        .await?;
        let st = sealed.status.clone().context("status")?;
        let (bucket, key) = (
            st.bucket.clone().context("bucket")?,
            st.key.clone().context("key")?,
        );
        let stored = object(&bucket, &key).await?.context("object missing")?;
        ensure!(
            Some(stored.len() as i64) == st.size_bytes,
            "size in status differs"
        );
        ensure!(
            st.sha256.as_deref() == Some(sha256_hex(&stored).as_str()),
            "sha256 in status differs from the stored object"
        );
        // Ciphertext: no frame marker (every sent frame carries it) appears in the object.
        let marker = &sanctum_media_client::make_frame(0, 24)[..5];
        ensure!(
            !stored.windows(5).any(|w| w == marker),
            "plaintext media found in the bucket"
        );

        let out = tempfile::tempdir()?;
        let keys_dir = out.path().join("keys");
        write_tenant_keys(&cluster, &ns, &keys_dir).await?;
        let master_file = out.path().join("master.key");
        write_master_key(&cluster, &ns, &master_file).await?;
        let webm = out.path().join("visit-1.webm");
        let decrypt = |target: &Path, obj_key: &str| {
            decrypt(&run, &bucket, obj_key, &keys_dir, &master_file, target)
        };
        let done = decrypt(&webm, &key)?;
        ensure!(
            done.status.success(),
            "decrypt failed: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let frames = frames_in(&webm)?;
        // The room was recorded for about 3 s at 30 fps.
        ensure!(
            frames.len() >= 60,
            "only {} frames recorded in about 3 s",
            frames.len()
        );
        // From the first keyframe on, every frame the publisher sent, in order, none lost.
        ensure!(
            frames.windows(2).all(|w| w[1] == w[0] + 1),
            "recorded frames are not the consecutive run that was sent: {frames:?}"
        );
        ensure!(
            frames.last().is_some_and(|&n| u64::from(n) < sent),
            "a recorded frame was never sent"
        );

        readme_recording_block(&node, &signing, &run, &ns).await?;

        // A tampered copy is refused and leaves no output.
        let mut tampered = stored.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 0x01;
        let cloud = cloud().await?;
        cloud
            .s3
            .put_object()
            .bucket(&bucket)
            .key("recordings/tampered.sealed")
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .body(tampered.into())
            .send()
            .await?;
        let bad = out.path().join("tampered.webm");
        let refused = decrypt(&bad, "recordings/tampered.sealed")?;
        ensure!(
            !refused.status.success(),
            "a tampered recording was decrypted"
        );
        ensure!(
            String::from_utf8_lossy(&refused.stderr).contains("failed authentication"),
            "unclear error: {}",
            String::from_utf8_lossy(&refused.stderr)
        );
        ensure!(!bad.exists(), "a partial plaintext file was left behind");

        // Backed up now; restored below, after this test has deleted the recording's
        // sealed version for the integrity check.
        let backup_bucket = back_up(&cloud, &run, &ns, &bucket, &key).await?;

        // Integrity: the periodic re-check confirms the object, then notices it is gone.
        wait_integrity(&api, "visit-1", "True", "ChecksumMatches").await?;
        cloud
            .s3
            .delete_object()
            .bucket(&bucket)
            .key(&key)
            .set_version_id(st.version_id.clone())
            .send()
            .await?;
        wait_integrity(&api, "visit-1", "False", "ObjectMissing").await?;
        recording_event(&cluster, &ns, "visit-1", "Warning", "ObjectMissing").await?;

        restore(
            &cloud,
            &run,
            &bucket,
            &backup_bucket,
            &key,
            &frames,
            &master_file,
        )
        .await?;
        session_log_is_audited(&cluster.client, &cloud, &run).await?;
        ensure!(
            st.key_version == Some(1),
            "visit-1 key version {:?}",
            st.key_version
        );
        rotation_during_a_call(&cluster, &run, &ns, &node, &signing, &api).await?;

        // The Recording finds its object again: restored from the version it names, with
        // the SHA-256 recorded at sealing. (Re-linked once, then re-checked as usual.)
        wait_for("visit-1 re-linked", Duration::from_secs(30), || async {
            let status = api.get("visit-1").await?.status.unwrap_or_default();
            let verified = status
                .conditions
                .iter()
                .any(|c| c.type_ == "IntegrityVerified" && c.status == "True");
            Ok(verified && status.version_id.is_some() && status.version_id != st.version_id)
        })
        .await?;
        recording_event(&cluster, &ns, "visit-1", "Normal", "Relinked").await?;

        // Legal hold: a second recording survives retention and blocks deletion.
        let (held, _) = record(
            &api,
            &node,
            &signing,
            &run,
            "visit-2",
            recording("visit-2", "room-b", true, Some(1))?,
        )
        .await?;
        let held_key = held.status.clone().context("status")?.key.context("key")?;

        // Retention: move both recordings' end 40 days back, as if time had passed. The
        // operator applies the whole status it computed from its last read, so a write of
        // its that crosses this patch puts the old end back: patch until it holds.
        ensure!(
            object(&bucket, &key).await?.is_some(),
            "the restored recording is in the bucket before it expires"
        );
        // A tenant editor points visit-1's status at another bucket's object of the same
        // key (threat-model.md T1): the operator's deletion at retention must reach only
        // the tenant's bucket, at the key of the Recording's uid.
        let victim = format!("victim-{run}");
        cloud.s3.create_bucket().bucket(&victim).send().await?;
        cloud
            .s3
            .put_object()
            .bucket(&victim)
            .key(&key)
            .body(b"another tenant's recording".to_vec().into())
            .send()
            .await?;
        let past = "2026-01-01T00:00:00Z";
        wait_for(
            "visit-1 to expire and be deleted",
            Duration::from_secs(60),
            || async {
                let mut deleted = false;
                for name in ["visit-1", "visit-2"] {
                    let r = api.get(name).await?;
                    let status = r.status.unwrap_or_default();
                    deleted |= name == "visit-1" && status.phase == Some(RecordingPhase::Deleted);
                    if status.ended_at.as_ref().map(|t| t.0.to_string()).as_deref() != Some(past)
                        && status.phase == Some(RecordingPhase::Sealed)
                    {
                        let mut forged = serde_json::json!({"endedAt": past});
                        if name == "visit-1" {
                            forged["bucket"] = victim.clone().into();
                        }
                        api.patch_status(
                            name,
                            &PatchParams::default(),
                            &Patch::Merge(serde_json::json!({"status": forged})),
                        )
                        .await?;
                    }
                }
                Ok(deleted)
            },
        )
        .await?;
        ensure!(
            object(&bucket, &key).await?.is_none(),
            "expired object still there"
        );
        ensure!(
            object(&victim, &key).await?.is_some(),
            "the operator deleted in the bucket a forged status named"
        );
        delete_all_versions(&cloud.s3, &victim, &key).await?;
        cloud.s3.delete_bucket().bucket(&victim).send().await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let still = api.get("visit-2").await?;
        ensure!(
            still.status.as_ref().and_then(|s| s.phase) == Some(RecordingPhase::Sealed),
            "a recording under legal hold left Sealed"
        );
        ensure!(
            object(&bucket, &held_key).await?.is_some(),
            "held object deleted"
        );

        api.delete("visit-2", &DeleteParams::default()).await?;
        wait_for(
            "visit-2 DeletionBlocked",
            Duration::from_secs(30),
            || async {
                let r = api.get("visit-2").await?;
                Ok(r.status.iter().flat_map(|s| &s.conditions).any(|c| {
                    c.type_ == "DeletionBlocked" && c.status == "True" && c.reason == "LegalHold"
                }))
            },
        )
        .await?;
        ensure!(
            api.get_opt("visit-2").await?.is_some(),
            "deleted despite legal hold"
        );
        ensure!(
            object(&bucket, &held_key).await?.is_some(),
            "held object deleted"
        );
        api.patch(
            "visit-2",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"legalHold": false}})),
        )
        .await?;
        wait_for("visit-2 gone", Duration::from_secs(30), || async {
            Ok(api.get_opt("visit-2").await?.is_none())
        })
        .await?;
        ensure!(
            object(&bucket, &held_key).await?.is_none(),
            "object kept after deletion"
        );
        host_confirms(&tenants, &api, &node, &signing, &run, &bucket).await?;
        // A node that dies mid-recording: the Recording fails with MediaNodeLost and the
        // operator aborts its multipart upload, so no part of it stays in the bucket.
        let mut node = node;
        let _publisher = publish(&node, &signing, &run, "room-c").await?;
        api.create(
            &PostParams::default(),
            &recording("visit-3", "room-c", false, None)?,
        )
        .await?;
        let started = wait_phase(&api, "visit-3", RecordingPhase::Recording).await?;
        let lost_key = started.status.context("status")?.key.context("key")?;
        let uploads = |key: String| {
            let s3 = cloud.s3.clone();
            let bucket = bucket.clone();
            async move {
                let listed = s3.list_multipart_uploads().bucket(&bucket).send().await?;
                anyhow::Ok(
                    listed
                        .uploads()
                        .iter()
                        .filter(|u| u.key() == Some(key.as_str()))
                        .count(),
                )
            }
        };
        ensure!(
            uploads(lost_key.clone()).await? == 1,
            "a recording in progress has no multipart upload"
        );
        node.child.kill().await?;
        let failed = wait_phase(&api, "visit-3", RecordingPhase::Failed).await?;
        ensure!(
            failed.status.iter().flat_map(|s| &s.conditions).any(|c| {
                c.type_ == "Stalled" && c.status == "True" && c.reason == "MediaNodeLost"
            }),
            "lost node not reported: {:?}",
            failed.status
        );
        ensure!(
            uploads(lost_key.clone()).await? == 0,
            "the lost recording's upload was not aborted"
        );
        ensure!(
            object(&bucket, &lost_key).await?.is_none(),
            "a lost recording left an object"
        );
        drop(node);
        tenants.delete(&run, &DeleteParams::default()).await?;
        Ok(())
    })
    .await
}

/// A tenant whose hosts confirm (`spec.recording.hostConfirms`): a Recording waits in
/// `Pending` (`AwaitingHost`) with nothing recorded until the room's host answers on its
/// own publishing session, as the visit page does; a no fails it (`HostDeclined`), a yes
/// records and seals it. The policy is switched back off at the end.
async fn host_confirms(
    tenants: &Api<VideoTenant>,
    api: &Api<Recording>,
    node: &Node,
    signing: &[u8],
    run: &str,
    bucket: &str,
) -> Result<()> {
    let policy =
        |on: bool| Patch::Merge(serde_json::json!({"spec": {"recording": {"hostConfirms": on}}}));
    let applied = || async {
        let t = tenants.get(run).await?;
        let seen = t.status.as_ref().and_then(|s| s.observed_generation);
        anyhow::Ok(seen == t.metadata.generation)
    };
    tenants
        .patch(run, &PatchParams::default(), &policy(true))
        .await?;
    wait_for(
        "the tenant's new policy observed",
        Duration::from_secs(30),
        applied,
    )
    .await?;
    let room = "room-h";
    let host = publish(node, signing, run, room).await?;
    let token = mint(signing, run, room)?;
    let patient = sanctum_e2e::node::mint_token(signing, run, room, "patient-1", "participant")?;
    let http = reqwest::Client::new();
    let answer = |token: &str, decision: &str| {
        http.post(format!("{}/consent", host.resource))
            .bearer_auth(token)
            .json(&serde_json::json!({"decision": decision}))
            .send()
    };
    let has_reason = |r: &Recording, reason: &str| {
        r.status
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.reason == reason)
    };
    for (name, decision) in [("confirm-no", "declined"), ("confirm-yes", "granted")] {
        api.create(&PostParams::default(), &recording(name, room, false, None)?)
            .await?;
        wait_for(
            &format!("{name} AwaitingHost"),
            Duration::from_secs(30),
            || async {
                let r = api.get(name).await?;
                anyhow::Ok(
                    r.status.as_ref().and_then(|s| s.phase) == Some(RecordingPhase::Pending)
                        && has_reason(&r, "AwaitingHost"),
                )
            },
        )
        .await?;
        let uploads = cloud()
            .await?
            .s3
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await?;
        let key = format!(
            "recordings/{}.sealed",
            api.get(name).await?.uid().context("uid")?
        );
        ensure!(
            !uploads
                .uploads()
                .iter()
                .any(|u| u.key() == Some(key.as_str())),
            "{name}: an upload started before the host answered"
        );
        let refused = answer(&patient, "granted").await?.status();
        ensure!(
            refused == 403,
            "a participant answered for the host: {refused}"
        );
        let answered = answer(&token, decision).await?.status();
        ensure!(answered == 200, "the host's answer: {answered}");
        if decision == "declined" {
            let failed = wait_phase(api, name, RecordingPhase::Failed).await?;
            ensure!(
                has_reason(&failed, "HostDeclined"),
                "declined recording: {:?}",
                failed.status
            );
            ensure!(
                object(bucket, &key).await?.is_none(),
                "a declined recording left an object"
            );
        } else {
            wait_phase(api, name, RecordingPhase::Recording).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            api.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"stop": true}})),
            )
            .await?;
            wait_phase(api, name, RecordingPhase::Sealed).await?;
            ensure!(
                object(bucket, &key).await?.is_some(),
                "the confirmed recording is not in the bucket"
            );
        }
    }
    host.close().await?;
    tenants
        .patch(run, &PatchParams::default(), &policy(false))
        .await?;
    wait_for("the tenant's policy back", Duration::from_secs(30), applied).await?;
    Ok(())
}

/// A data-key rotation asked for during a call: the node takes the new version from its
/// key directory (this test rewrites it from the Secret, as kubelet does for a pod), the
/// call's sessions stay connected with frames flowing, and the next Recording is sealed
/// under the new version.
async fn rotation_during_a_call(
    cluster: &Cluster,
    run: &str,
    ns: &str,
    node: &Node,
    signing: &[u8],
    api: &Api<Recording>,
) -> Result<()> {
    let room = "room-rotation";
    let publisher = publish(node, signing, run, room).await?;
    let viewer = connect(
        &reqwest::Client::new(),
        Kind::Subscribe,
        &options(
            node,
            room,
            sanctum_e2e::node::mint_token(signing, run, room, "viewer-1", "observer")?,
        ),
    )
    .await?;
    wait_for(
        "video reaches the viewer",
        Duration::from_secs(20),
        || async { Ok(viewer.stats().frames.len() >= 30) },
    )
    .await?;

    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let poke = serde_json::json!({"metadata": {"annotations": {"sanctum.dev/rotate-data-key": "during-a-call"}}});
    tenants
        .patch(run, &PatchParams::default(), &Patch::Merge(&poke))
        .await?;
    wait_for("key version 2", Duration::from_secs(60), || async {
        Ok(tenants.get(run).await?.status.and_then(|s| s.key_version) == Some(2))
    })
    .await?;
    write_tenant_keys(cluster, ns, &node.keys).await?;
    let metrics = format!("http://127.0.0.1:{}/metrics", node.metrics);
    wait_for(
        "the node to take version 2",
        Duration::from_secs(30),
        || async {
            let text = reqwest::get(&metrics).await?.text().await?;
            Ok(text
                .lines()
                .any(|l| l == "sanctum_media_tenant_key_version 2"))
        },
    )
    .await?;

    sanctum_e2e::node::call_goes_on(&viewer, &[("publisher", &publisher), ("viewer", &viewer)])
        .await
        .context("across the rotation")?;

    // The next Recording takes the new version; the sessions it records are the same.
    let sealed = record_room(
        api,
        "visit-rotated",
        recording("visit-rotated", room, false, None)?,
        Duration::from_secs(2),
    )
    .await?;
    let version = sealed.status.and_then(|s| s.key_version);
    ensure!(
        version == Some(2),
        "the recording after the rotation names key version {version:?}"
    );
    publisher.close().await?;
    viewer.close().await?;
    Ok(())
}

/// Runs `sanctum backup` for the tenant with extra flags; the child is killed on drop.
fn backup_command(
    run: &str,
    ns: &str,
    source: &str,
    dest: &str,
    extra: &[&str],
) -> Result<tokio::process::Command> {
    let mut command = tokio::process::Command::new(workspace_binary("sanctum")?);
    command
        .args(["backup", "--tenant", run, "--namespace", ns])
        .args(["--source-bucket", source, "--destination-bucket", dest])
        .args(["--lock-seconds", "4"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(command)
}

/// Runs a backup to completion and returns its summary line.
async fn run_backup(
    run: &str,
    ns: &str,
    source: &str,
    dest: &str,
    extra: &[&str],
) -> Result<serde_json::Value> {
    let out = backup_command(run, ns, source, dest, extra)?
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(
        stdout.lines().last().context("a summary line")?,
    )?)
}

/// Waits for an Event of `type_` with `reason` about Recording `name` in `ns`.
async fn recording_event(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> Result<()> {
    let what = format!("a {type_} {reason} Event for {name}");
    sanctum_e2e::wait_event(&cluster.client, Some(ns), name, &what, |e| {
        e.type_.as_deref() == Some(type_) && e.reason.as_deref() == Some(reason)
    })
    .await
}

/// The audit bucket of the test's operator and node.
fn audit_bucket(run: &str) -> String {
    format!("sanctum-audit-{run}")
}

/// The node's session log is in the audit trail: its own chain beside the operator's,
/// intact, holding the sessions and the recording, and nothing like a token.
async fn session_log_is_audited(client: &kube::Client, cloud: &Cloud, run: &str) -> Result<()> {
    let bucket = audit_bucket(run);
    let keys = audit_public_keys(client).await?;
    let audit = |command: &str| {
        std::process::Command::new(workspace_binary("sanctum")?)
            .args(["audit", command, "--tenant", run, "--bucket", &bucket])
            .arg("--public-keys")
            .arg(keys.path())
            .output()
            .map_err(anyhow::Error::from)
    };
    wait_for(
        "the node's session chain",
        Duration::from_secs(30),
        || async {
            Ok(!list_keys(
                &cloud.s3,
                &bucket,
                &format!("tenants/{run}/nodes/media-e2e-0."),
            )
            .await?
            .is_empty())
        },
    )
    .await?;
    let verified = audit("verify")?;
    let out = String::from_utf8_lossy(&verified.stdout);
    ensure!(
        verified.status.success()
            && out.contains(&format!("audit chain of {run} (reconciles) intact"))
            && out.lines().any(|l| {
                l.starts_with(&format!(
                    "audit chain of {run} (sessions of media node media-e2e-0."
                )) && l.contains(") intact and signed")
            }),
        "audit verify: {out}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let exported = audit("export")?;
    ensure!(exported.status.success(), "audit export failed");
    let text = String::from_utf8_lossy(&exported.stdout);
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let has = |kind: &str, outcome: &str| {
        records.iter().any(|r| {
            r["controller"] == "media-node" && r["kind"] == kind && r["outcome"] == outcome
        })
    };
    ensure!(
        has("Session", "join") && has("Session", "publish") && has("Recording", "record-start"),
        "session log records missing from the export: {text}"
    );
    // A JWT always starts with the base64 of `{"`; SDP carries fingerprints and candidates.
    ensure!(
        !text.contains("eyJ")
            && !text.contains("BEGIN")
            && !text.contains("a=fingerprint")
            && !text.contains("candidate:"),
        "a token, key or SDP reached the audit trail"
    );
    Ok(())
}

/// Runs `sanctum restore` of the tenant's newest backup into `bucket`, with extra flags.
fn restore_command(
    run: &str,
    dest: &str,
    bucket: &str,
    extra: &[&OsStr],
) -> Result<std::process::Output> {
    Ok(std::process::Command::new(workspace_binary("sanctum")?)
        .args([
            "restore",
            "--tenant",
            run,
            "--backup-bucket",
            dest,
            "--target-bucket",
            bucket,
        ])
        .args(extra)
        .output()?)
}

/// `sanctum-media-node decrypt` of `key` with the wrapped keys in `keys_dir`, into `output`.
fn decrypt(
    run: &str,
    bucket: &str,
    key: &str,
    keys_dir: &Path,
    master_file: &Path,
    output: &Path,
) -> Result<std::process::Output> {
    Ok(
        std::process::Command::new(workspace_binary("sanctum-media-node")?)
            .args(["decrypt", "--tenant", run, "--key-provider", "local"])
            .args(["--bucket", bucket, "--key", key])
            .arg("--tenant-key-dir")
            .arg(keys_dir)
            .arg("--local-master-key-file")
            .arg(master_file)
            .arg("--output")
            .arg(output)
            .output()?,
    )
}

/// README.md's Recording block as a user runs it, on this test's tenant (its name and
/// namespace in place of `clinic-a`'s, two seconds for the visit) while a participant
/// publishes into the block's room: the Recording is sealed, the block's `decrypt` writes
/// the frames that were sent, and the key-encryption key it read is removed again.
async fn readme_recording_block(node: &Node, signing: &[u8], run: &str, ns: &str) -> Result<()> {
    let block = sanctum_e2e::readme::block("kubectl -n vt-clinic-a apply -f - <<'YAML'")?;
    let tenant = format!("--tenant {run}");
    let script = sanctum_e2e::readme::substitute(
        &block,
        &[
            ("vt-clinic-a", ns),
            ("--tenant clinic-a", tenant.as_str()),
            ("# ... the visit ...", "sleep 2"),
        ],
    )?;
    let publisher = publish(node, signing, run, "room-7f3a").await?;
    let shell = sanctum_e2e::readme::Shell::new(&[])?;
    let shell = tokio::task::spawn_blocking(move || shell.run(block.line, &script).map(|_| shell))
        .await??;
    let (_, stats) = publisher.close().await?;
    let frames = frames_in(&shell.work.join("visit-42.webm"))?;
    ensure!(
        frames.len() >= 20
            && frames.windows(2).all(|w| w[1] == w[0] + 1)
            && frames
                .last()
                .is_some_and(|&n| u64::from(n) < stats.video_sent),
        "the README's recording holds {} frames, not a run of those sent: {frames:?}",
        frames.len()
    );
    ensure!(
        !shell.work.join("tenant-local-key").exists(),
        "the block leaves the tenant's key-encryption key on disk"
    );
    Ok(())
}

/// Backs the tenant up to a second bucket: killed midway and resumed, run twice at once,
/// refused without waiting while another run holds the lock. Returns the backup bucket.
async fn back_up(cloud: &Cloud, run: &str, ns: &str, bucket: &str, key: &str) -> Result<String> {
    // A bucket without Object Lock would not keep the backups from whoever holds the backup
    // role: the run is refused and writes nothing there, not even its lock.
    let unlocked = format!("{run}-unlocked");
    cloud.s3.create_bucket().bucket(&unlocked).send().await?;
    let refused = backup_command(run, ns, bucket, &unlocked, &[])?
        .output()
        .await?;
    let err = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        !refused.status.success() && err.contains(&format!("{unlocked} has no Object Lock")),
        "a backup into a bucket without Object Lock: {err}"
    );
    ensure!(
        list_keys(&cloud.s3, &unlocked, "").await?.is_empty(),
        "the refused backup wrote into the bucket"
    );
    let dest = format!("{run}-backup");
    sanctum_e2e::aws::create_backup_bucket(&cloud.s3, &dest, None).await?;
    // More objects, so a run can be killed while it copies.
    let sealed = object(bucket, key).await?.context("recording")?;
    for i in 0..40 {
        cloud
            .s3
            .put_object()
            .bucket(bucket)
            .key(format!("recordings/filler-{i:02}.sealed"))
            .body(sealed.clone().into())
            .send()
            .await?;
    }
    let total = list_keys(&cloud.s3, bucket, "").await?.len();
    let manifests = format!("{run}/manifests/");

    // Killed midway: copies made, no manifest; the next run takes over the expired lock,
    // keeps the copies it finds and completes.
    let mut first = backup_command(run, ns, bucket, &dest, &[])?.spawn()?;
    let objects_prefix = format!("{run}/objects/");
    wait_for("the first copies", Duration::from_secs(60), || async {
        Ok(list_keys(&cloud.s3, &dest, &objects_prefix).await?.len() >= 3)
    })
    .await?;
    first.kill().await?;
    let partial = list_keys(&cloud.s3, &dest, &objects_prefix).await?.len();
    ensure!(partial < total, "the backup finished before it was killed");
    ensure!(
        list_keys(&cloud.s3, &dest, &manifests).await?.is_empty(),
        "a killed backup wrote a manifest"
    );
    let resumed = run_backup(run, ns, bucket, &dest, &["--wait-seconds", "30"]).await?;
    println!("killed after {partial} of {total} copies; resumed: {resumed}");
    ensure!(resumed["objects"] == total, "{resumed}");
    ensure!(
        resumed["copied"].as_u64().context("copied")? <= (total - partial) as u64 + 1,
        "the resumed run copied again what the killed one had copied: {resumed}"
    );
    ensure!(resumed["keyVersions"].as_u64() >= Some(1), "{resumed}");

    // Twice at once: one waits for the other's lock; neither copies anything new.
    let (a, b) = tokio::join!(
        run_backup(run, ns, bucket, &dest, &["--wait-seconds", "60"]),
        run_backup(run, ns, bucket, &dest, &["--wait-seconds", "60"]),
    );
    let (a, b) = (a?, b?);
    ensure!(
        a["copied"] == 0 && b["copied"] == 0 && a["backup"] != b["backup"],
        "{a} {b}"
    );
    ensure!(
        list_keys(&cloud.s3, &dest, &manifests).await?.len() == 3,
        "three manifests"
    );
    // Without waiting, a run that finds the lock held says so and fails.
    let mut holder = backup_command(run, ns, bucket, &dest, &[])?.spawn()?;
    let lock = format!("{run}/lock");
    wait_for("the lock", Duration::from_secs(30), || async {
        Ok(list_keys(&cloud.s3, &dest, &lock).await?.contains(&lock))
    })
    .await?;
    let busy = backup_command(run, ns, bucket, &dest, &[])?
        .output()
        .await?;
    let holder_out = holder.wait().await?;
    ensure!(holder_out.success(), "the lock holder failed");
    ensure!(
        !busy.status.success()
            && String::from_utf8_lossy(&busy.stderr).contains("another backup of"),
        "a concurrent backup without --wait-seconds: {}",
        String::from_utf8_lossy(&busy.stderr)
    );

    // Keeping one: the older backups leave the listing, behind delete markers, and their
    // versions stay locked, so the backup role cannot destroy them.
    let pruned = run_backup(run, ns, bucket, &dest, &["--keep", "1"]).await?;
    let left = list_keys(&cloud.s3, &dest, &manifests).await?;
    ensure!(
        left == [format!(
            "{manifests}{}.json",
            pruned["backup"].as_str().context("id")?
        )],
        "one manifest listed after --keep 1: {left:?}"
    );
    let versions = cloud
        .s3
        .list_object_versions()
        .bucket(&dest)
        .prefix(&manifests)
        .send()
        .await?;
    let retired: Vec<_> = versions
        .versions()
        .iter()
        .filter(|v| v.is_latest() != Some(true))
        .collect();
    ensure!(
        retired.len() == 4 && versions.delete_markers().len() == 4,
        "four retired manifests kept behind four delete markers: {} versions, {} markers",
        retired.len(),
        versions.delete_markers().len()
    );
    let destroy = cloud
        .s3
        .delete_object()
        .bucket(&dest)
        .key(retired[0].key().context("key")?)
        .set_version_id(retired[0].version_id().map(str::to_string))
        .send()
        .await;
    ensure!(destroy.is_err(), "a locked backup version was destroyed");
    Ok(dest)
}

/// Every object of the tenant bucket deleted (all versions), restored from the backup, and
/// the recording decrypted with the restored wrapped keys into the frames it held.
async fn restore(
    cloud: &Cloud,
    run: &str,
    bucket: &str,
    dest: &str,
    key: &str,
    frames: &[u32],
    master_file: &Path,
) -> Result<()> {
    let total = list_keys(&cloud.s3, dest, &format!("{run}/objects/"))
        .await?
        .len();

    // Lose every recording object (all versions), restore, read back.
    for k in list_keys(&cloud.s3, bucket, "").await? {
        delete_all_versions(&cloud.s3, bucket, &k).await?;
    }
    ensure!(
        list_keys(&cloud.s3, bucket, "").await?.is_empty(),
        "objects left"
    );
    let restored_keys = tempfile::tempdir()?;
    let keys_dir = restored_keys.path().join("keys");
    let out = restore_command(
        run,
        dest,
        bucket,
        &["--keys-dir".as_ref(), keys_dir.as_os_str()],
    )?;
    ensure!(
        out.status.success(),
        "restore failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "restore: {} objects, key versions {}",
        report["restored"].as_array().map_or(0, Vec::len),
        report["keyVersions"]
    );
    ensure!(
        report["restored"].as_array().map(Vec::len) == Some(total),
        "{report}"
    );
    ensure!(
        report["missing"].as_array().is_some_and(Vec::is_empty),
        "{report}"
    );
    ensure!(
        list_keys(&cloud.s3, bucket, "").await?.len() == total,
        "restored object count"
    );
    let webm = restored_keys.path().join("restored.webm");
    let done = decrypt(run, bucket, key, &keys_dir, master_file, &webm)?;
    ensure!(
        done.status.success(),
        "decrypting the restored recording failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    ensure!(
        frames_in(&webm)? == frames,
        "the restored recording holds other frames"
    );

    // A backup whose copy was deleted (a delete marker: its locked versions cannot be):
    // restore reports it missing and fails.
    let gone = format!("{run}/objects/recordings/filler-00.sealed");
    cloud
        .s3
        .delete_object()
        .bucket(dest)
        .key(&gone)
        .send()
        .await?;
    let out = restore_command(run, dest, bucket, &[])?;
    ensure!(
        !out.status.success(),
        "a restore with a missing object succeeded"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        report["missing"] == serde_json::json!(["recordings/filler-00.sealed"]),
        "{report}"
    );
    // The restored recording stays for the retention check, which must delete it; the
    // rest (fillers, the tampered copy) are not recordings the operator tracks.
    for k in list_keys(&cloud.s3, bucket, "").await? {
        if k != key {
            delete_all_versions(&cloud.s3, bucket, &k).await?;
        }
    }
    Ok(())
}
