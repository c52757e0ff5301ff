//! Unit tests of the media-node Deployment: security context, mounts, env, spread.

use super::*;
use crate::controller::tenant::build::signing_key::build_public_key_config_map;
use crate::controller::tenant::fixtures;
use sanctum_api::labels;

fn deployment(region: usize) -> Deployment {
    let v = fixtures::validated("clinic-a");
    let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
    build_deployment(
        &v,
        &v.spec.media.regions[region],
        &cm,
        &fixtures::key(),
        &nodes(),
        Some(&Advertise::PodIp),
    )
}

fn nodes() -> MediaNodes {
    MediaNodes {
        role_arn: None,
        audit_bucket: Some("sanctum-audit".into()),
        aws: AwsEnv {
            endpoint: Some("https://s3.example.internal".into()),
            region: "eu-west-1".into(),
            path_style: true,
            owners: Some(sanctum_cloud::BucketOwners::new("123456789012").expect("valid")),
        },
    }
}

fn env_of(d: &Deployment) -> BTreeMap<String, Option<String>> {
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod");
    pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

#[test]
fn browsers_of_the_allowed_origins_may_call_signaling() {
    let mut v = fixtures::validated("clinic-a");
    let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
    let build = |v: &Validated| {
        env_of(&build_deployment(
            v,
            &v.spec.media.regions[0],
            &cm,
            &fixtures::key(),
            &nodes(),
            Some(&Advertise::PodIp),
        ))
    };
    assert!(
        !build(&v).contains_key("SANCTUM_CORS_ORIGINS"),
        "same origin only"
    );
    v.spec.media.allowed_origins = vec![
        "https://app.clinic.example".into(),
        "http://127.0.0.1:8080".into(),
    ];
    assert_eq!(
        build(&v)["SANCTUM_CORS_ORIGINS"].as_deref(),
        Some("https://app.clinic.example,http://127.0.0.1:8080")
    );
}

#[test]
fn pods_carry_no_api_token() {
    // The node never calls the API; an automounted token would be a credential for
    // whoever compromises the internet-facing pod.
    let pod = deployment(0)
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod");
    assert_eq!(pod.automount_service_account_token, Some(false));
}

#[test]
fn local_tenants_mount_their_key_encryption_key() {
    let d = deployment(0);
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "local-key")
        .expect("local key volume");
    assert_eq!(
        volume
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref()),
        Some(LOCAL_KEY_SECRET)
    );
    let mount = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "local-key")
        .expect("mounted");
    assert_eq!(mount.read_only, Some(true));
    assert_eq!(
        env_of(&d)["SANCTUM_LOCAL_MASTER_KEY_FILE"].as_deref(),
        Some("/etc/sanctum/local-key/key")
    );
}

#[test]
fn aws_tenants_mount_no_local_key_and_reach_the_configured_endpoint() {
    let v = fixtures::validated("clinic-a");
    let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
    let key = TenantKeyRef {
        provider: KeyProvider::Aws,
        arn: "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
        ..fixtures::key()
    };
    let d = build_deployment(
        &v,
        &v.spec.media.regions[0],
        &cm,
        &key,
        &nodes(),
        Some(&Advertise::PodIp),
    );
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod");
    assert!(pod.volumes.iter().flatten().all(|v| v.name != "local-key"));
    let env = env_of(&d);
    assert!(!env.contains_key("SANCTUM_LOCAL_MASTER_KEY_FILE"));
    assert_eq!(env["AWS_REGION"].as_deref(), Some("eu-west-1"));
    assert_eq!(
        env["SANCTUM_AWS_ENDPOINT"].as_deref(),
        Some("https://s3.example.internal")
    );
    assert_eq!(env["SANCTUM_S3_PATH_STYLE"].as_deref(), Some("true"));
    assert_eq!(
        env["SANCTUM_AUDIT_BUCKET"].as_deref(),
        Some("sanctum-audit")
    );
    assert_eq!(
        env["SANCTUM_AWS_ACCOUNT_ID"].as_deref(),
        Some("123456789012"),
        "nodes check the owner of every bucket they write"
    );
    assert_eq!(
        env["SANCTUM_TENANT_UID"].as_deref(),
        Some(v.owner.uid.as_str()),
        "the KMS encryption context names the tenant's uid"
    );
    let on_aws = build_deployment(
        &v,
        &v.spec.media.regions[0],
        &cm,
        &key,
        &MediaNodes {
            aws: AwsEnv {
                region: "us-east-1".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        Some(&Advertise::PodIp),
    );
    assert!(
        !env_of(&on_aws).contains_key("SANCTUM_AWS_ENDPOINT"),
        "AWS needs none"
    );
}

#[test]
fn regions_tolerate_the_taints_they_name() {
    let mut v = fixtures::validated("clinic-a");
    v.spec.media.regions[0].tolerations = vec![k8s_openapi::api::core::v1::Toleration {
        key: Some("dedicated".into()),
        value: Some("media".into()),
        effect: Some("NoSchedule".into()),
        operator: Some("Equal".into()),
        ..Default::default()
    }];
    let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
    let d = build_deployment(
        &v,
        &v.spec.media.regions[0],
        &cm,
        &fixtures::key(),
        &nodes(),
        Some(&Advertise::PodIp),
    );
    let pod = d.spec.expect("spec").template.spec.expect("pod");
    assert_eq!(
        pod.tolerations.expect("tolerations")[0].key.as_deref(),
        Some("dedicated")
    );
    let other = build_deployment(
        &v,
        &v.spec.media.regions[1],
        &cm,
        &fixtures::key(),
        &nodes(),
        Some(&Advertise::PodIp),
    );
    assert!(
        other
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
            .tolerations
            .is_none()
    );
}

#[test]
fn pods_are_hardened_as_restricted_pod_security_requires() {
    let d = deployment(0);
    let pod = d.spec.expect("spec").template.spec.expect("pod");
    let psc = pod.security_context.expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(MEDIA_UID));
    assert_eq!(
        psc.seccomp_profile.expect("seccomp").type_,
        "RuntimeDefault"
    );
    for c in &pod.containers {
        let sc = c
            .security_context
            .as_ref()
            .expect("container security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.privileged, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );
        assert!(
            sc.capabilities
                .as_ref()
                .and_then(|c| c.add.clone())
                .is_none()
        );
    }
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(MEDIA_SERVICE_ACCOUNT)
    );
    assert!(pod.host_network.is_none() && pod.host_pid.is_none() && pod.host_ipc.is_none());
}

#[test]
fn pods_spread_and_carry_tenant_settings() {
    let d = deployment(0);
    assert_eq!(d.metadata.name.as_deref(), Some("media-us-east"));
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let selector = spec.selector.match_labels.expect("labels");
    assert_eq!(selector[labels::REGION], "us-east");
    let pod = spec.template.spec.expect("pod");
    let spread = pod.topology_spread_constraints.expect("spread");
    assert_eq!(spread.len(), 2);
    assert!(spread.iter().all(|s| {
        s.label_selector
            .as_ref()
            .and_then(|l| l.match_labels.clone())
            == Some(selector.clone())
    }));
    let env = pod.containers[0].env.clone().expect("env");
    let get = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(get("SANCTUM_TENANT").as_deref(), Some("clinic-a"));
    assert_eq!(get("SANCTUM_MAX_SESSION_MINUTES").as_deref(), Some("240"));
    assert_eq!(get("SANCTUM_IDLE_TIMEOUT_SECONDS").as_deref(), Some("300"));
    let volumes = pod.volumes.expect("volumes");
    assert_eq!(
        volumes[0].config_map.as_ref().expect("cm").name,
        "join-token-public-key"
    );
    let template_labels = spec
        .template
        .metadata
        .expect("meta")
        .labels
        .expect("labels");
    for (k, val) in &selector {
        assert_eq!(
            template_labels.get(k),
            Some(val),
            "template matches selector"
        );
    }
}

#[test]
fn autoscaled_regions_leave_replicas_to_the_hpa() {
    let d = deployment(1);
    assert_eq!(d.spec.expect("spec").replicas, None);
}

#[test]
fn exposure_sets_what_nodes_offer_and_waits_with_no_replicas() {
    let mut v = fixtures::validated("clinic-a");
    v.spec.media.regions[0].expose.mode = ExposeMode::NodePort;
    let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
    let region = v.spec.media.regions[0].clone();
    let waiting = build_deployment(&v, &region, &cm, &fixtures::key(), &nodes(), None);
    assert_eq!(
        waiting.spec.as_ref().and_then(|s| s.replicas),
        Some(0),
        "no node runs before it knows what to offer"
    );
    let offered = Advertise::Addresses {
        udp: "$(HOST_IP):31000".into(),
        tcp: "$(HOST_IP):31001".into(),
    };
    let d = build_deployment(&v, &region, &cm, &fixtures::key(), &nodes(), Some(&offered));
    assert_eq!(
        d.spec.as_ref().and_then(|s| s.replicas),
        Some(region.replicas)
    );
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod");
    let env: Vec<&str> = pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    let at = |name: &str| env.iter().position(|n| *n == name).expect(name);
    assert!(
        at("HOST_IP") < at("SANCTUM_MEDIA_ADVERTISE_ADDR"),
        "$(HOST_IP) is defined before it is used"
    );
    let values = env_of(&d);
    assert_eq!(
        values["SANCTUM_MEDIA_ADVERTISE_ADDR"].as_deref(),
        Some("$(HOST_IP):31000")
    );
    assert_eq!(
        values["SANCTUM_MEDIA_TCP_ADVERTISE_ADDR"].as_deref(),
        Some("$(HOST_IP):31001")
    );
    assert_eq!(
        values["SANCTUM_MEDIA_TCP_ADDR"].as_deref(),
        Some("0.0.0.0:10000")
    );
    let anti = pod
        .affinity
        .and_then(|a| a.pod_anti_affinity)
        .and_then(|a| a.required_during_scheduling_ignored_during_execution)
        .expect("one media node per Kubernetes node");
    assert_eq!(anti[0].topology_key, "kubernetes.io/hostname");
}

#[test]
fn a_turn_service_is_mounted_and_named() {
    let mut v = fixtures::validated("clinic-a");
    v.spec.media.turn = Some(sanctum_api::TurnSpec {
        urls: vec!["turns:turn.clinic.example:443?transport=tcp".into()],
        secret_name: "clinic-turn".into(),
        secret_key: "static-auth-secret".into(),
    });
    v.spec.media.ports.ice_tcp = false;
    let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
    let d = build_deployment(
        &v,
        &v.spec.media.regions[0],
        &cm,
        &fixtures::key(),
        &nodes(),
        Some(&Advertise::PodIp),
    );
    let values = env_of(&d);
    assert_eq!(
        values["SANCTUM_TURN_URLS"].as_deref(),
        Some("turns:turn.clinic.example:443?transport=tcp")
    );
    assert_eq!(
        values["SANCTUM_TURN_SECRET_FILE"].as_deref(),
        Some("/etc/sanctum/turn/secret")
    );
    assert!(
        !values.contains_key("SANCTUM_MEDIA_TCP_ADDR"),
        "ICE-TCP is off"
    );
    let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
    let turn = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "turn")
        .and_then(|v| v.secret.clone())
        .expect("turn volume");
    assert_eq!(turn.secret_name.as_deref(), Some("clinic-turn"));
    let items = turn.items.expect("one key");
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("static-auth-secret", "secret"),
        "only the shared secret is mounted, under a fixed name"
    );
    let ports: Vec<String> = pod.containers[0]
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();
    assert!(!ports.contains(&"media-tcp".to_string()));
}
