//! End-to-end, container collection: the real agent binary against the real Docker engine of this machine,
//! forwarding to the intake stand-in. Containers' metrics with their ECS and image tags, origin detection (the
//! Unix socket's peer and the `|c:` field of UDP clients, at each tag cardinality), and the deploy and error
//! events of containers. Containers are started from the locally built FROM-scratch test image (testimages/);
//! nothing is mocked. Skipped with a message when no engine is present (a failure under KELPIE_REQUIRE_DOCKER=1).

mod common;
#[path = "../container/tests/common/mod.rs"]
mod docker;

use common::*;
use kelpie_standin::intake::Intake;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_metrics_origin_tags_and_deploy_events_reach_the_intake() {
    if !docker::docker_ready() {
        return;
    }
    let intake = Intake::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Containers run as root and the socket directory is bind-mounted into them.
    let stream_sock = dir.path().join("dsd.socket");
    let url = intake.url();
    let sock = stream_sock.to_str().unwrap().to_string();
    let agent = AgentProc::spawn(&[
        ("DD_API_KEY", "e2e-key"),
        ("DD_DD_URL", url.as_str()),
        ("DD_CONTAINER_COLLECTION", "true"),
        ("DD_DOGSTATSD_ORIGIN_DETECTION", "true"),
        ("DD_DOGSTATSD_STREAM_SOCKET", sock.as_str()),
        ("DD_ECS_AGENT_URL", "http://127.0.0.1:9"),
    ]);
    let family = docker::unique("e2efam");
    let fam_label = format!("com.amazonaws.ecs.task-definition-family={family}");
    let burner = docker::run(
        "e2e-burn",
        &[
            "--label",
            &fam_label,
            "--label",
            "com.amazonaws.ecs.task-definition-version=41",
            "--label",
            "com.amazonaws.ecs.cluster=e2e-cluster",
            "--label",
            "com.amazonaws.ecs.container-name=burner",
        ],
        &["burn"],
    );
    let mount = format!("{}:/sock", dir.path().display());
    let sender = docker::run(
        "e2e-send",
        &["-v", &mount],
        &[
            "send",
            "/sock/dsd.socket",
            "e2e.origin.hits:1|c|#from:container",
        ],
    );
    // A sender asking for high-cardinality origin tags on its line (`|card:high`, DogStatsD protocol).
    let high_sender = docker::run(
        "e2e-sendhi",
        &["-v", &mount],
        &[
            "send",
            "/sock/dsd.socket",
            "e2e.origin.card:1|c|#from:container|card:high",
        ],
    );
    let burner_tag = format!("container_name:{}", burner.name);
    // Datadog's default tag cardinality (low): the image's tags, not the container's name or id.
    let sender_tag = "short_image:tool";
    let high_tag = format!("container_name:{}", high_sender.name);
    let ok = wait_until(&intake, 40, |i| {
        let s = i.series();
        !with_tag(&s, "docker.cpu.usage", &burner_tag).is_empty()
            && !with_tag(&s, "e2e.origin.hits", sender_tag).is_empty()
            && !with_tag(&s, "e2e.origin.card", &high_tag).is_empty()
    })
    .await;
    assert!(
        ok,
        "docker metrics or origin-tagged metrics missing; log:\n{}",
        agent.log_text()
    );
    // Give the CPU rate two more intervals to settle, then check it reads about one core.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = intake.series();
    let cpu: Vec<f64> = with_tag(&s, "docker.cpu.usage", &burner_tag)
        .iter()
        .flat_map(|x| x.points.iter().map(|p| p.1))
        .collect();
    let best = cpu.iter().cloned().fold(0.0, f64::max);
    // About one core on an idle machine; the exact ~100 check against cgroup numbers is in
    // container/tests/docker.rs. Here: clearly busy, never more than one core (plus measurement jitter).
    assert!(
        best > 20.0 && best < 130.0,
        "docker.cpu.usage of a one-core burner: {cpu:?}"
    );
    let burn_series = with_tag(&s, "docker.cpu.usage", &burner_tag)[0];
    for t in [
        format!("task_family:{family}"),
        "task_version:41".to_string(),
        "ecs_cluster_name:e2e-cluster".to_string(),
        "runtime:docker".to_string(),
        "image_name:kelpie-test/tool".to_string(),
    ] {
        assert!(
            burn_series.tags.contains(&t),
            "missing {t} in {:?}",
            burn_series.tags
        );
    }
    assert_eq!(burn_series.host.as_deref(), Some("e2e-host"));
    // Origin detection: the container's tags on its DogStatsD metrics.
    let hits = with_tag(&s, "e2e.origin.hits", sender_tag)[0];
    for t in [
        "from:container",
        "image_name:kelpie-test/tool",
        "image_tag:latest",
        "docker_image:kelpie-test/tool:latest",
    ] {
        assert!(hits.tags.contains(&t.to_string()), "{t}: {:?}", hits.tags);
    }
    assert!(
        !hits
            .tags
            .iter()
            .any(|t| t.starts_with("container_id:") || t.starts_with("container_name:")),
        "high-cardinality tags at the default cardinality: {:?}",
        hits.tags
    );
    assert!(!intake
        .series()
        .iter()
        .any(|x| x.name.starts_with("system.") && x.host.as_deref() != Some("e2e-host")));
    assert!(
        s.iter().any(|x| x.name == "system.load.1"),
        "host metrics arrive too"
    );
    // The status shows origin detection at work.
    let o = &agent.status_json()["origin_detection"];
    assert_eq!(
        (
            o["uds"].as_bool(),
            o["client_field"].as_bool(),
            o["tag_cardinality"].as_str()
        ),
        (Some(true), Some(false), Some("low")),
        "{o}"
    );
    assert!(o["containers"].as_u64().unwrap_or(0) >= 3, "{o}");
    assert!(o["resolved"].as_u64().unwrap_or(0) >= 1, "{o}");

    // Deploy: the same family at revision 42 → exactly one deploy event.
    let v42 = docker::run(
        "e2e-burn42",
        &[
            "--label",
            &fam_label,
            "--label",
            "com.amazonaws.ecs.task-definition-version=42",
            "--label",
            "com.amazonaws.ecs.cluster=e2e-cluster",
            "--label",
            "com.amazonaws.ecs.container-name=burner",
        ],
        &["sleep"],
    );
    drop(burner);
    let title_part = format!("ECS deploy: {family} rev 41 → 42");
    let ok = wait_until(&intake, 30, |i| {
        i.events().iter().any(|e| {
            e["title"]
                .as_str()
                .is_some_and(|t| t.starts_with(&title_part))
        })
    })
    .await;
    assert!(ok, "no deploy event; events: {:?}", intake.events());
    // A failing container: one error event.
    let failing = docker::run("e2e-exit3", &[], &["exit", "3", "200"]);
    let fail_tag = format!("container_name:{}", failing.name);
    let ok = wait_until(&intake, 30, |i| {
        i.events().iter().any(|e| {
            e["alert_type"] == "error"
                && e["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == fail_tag.as_str()))
        })
    })
    .await;
    assert!(
        ok,
        "no error event for exit 3; events: {:?}",
        intake.events()
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let deploys: Vec<_> = intake
        .events()
        .into_iter()
        .filter(|e| e["title"].as_str().is_some_and(|t| t.contains(&family)))
        .collect();
    assert_eq!(deploys.len(), 1, "exactly one deploy event: {deploys:?}");
    assert_eq!(deploys[0]["alert_type"], "info");
    assert_eq!(deploys[0]["source_type_name"], "docker");
    drop(v42);
    drop((sender, high_sender));
}

/// Origin detection from the `|c:` field clients fill in (UDP): a container in the host's cgroup namespace
/// sends `c:ci-<its id>`, one in a private cgroup namespace `c:in-<inode of its cgroup directory>` (the test
/// image computes both the way Datadog's client libraries do). With `dogstatsd_origin_detection_client` on,
/// both series carry their container's tags; with it off (Datadog's default) the field is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_container_field_ci_and_in_forms_tag_metrics_when_enabled() {
    if !docker::docker_ready() {
        return;
    }
    let on_intake = Intake::start().await;
    let off_intake = Intake::start().await;
    let on_url = on_intake.url();
    let off_url = off_intake.url();
    let common = [
        ("DD_API_KEY", "e2e-key"),
        ("DD_CONTAINER_COLLECTION", "true"),
        // Both senders run the same image: their names and ids tell them apart.
        ("DD_DOGSTATSD_TAG_CARDINALITY", "high"),
        ("DD_ECS_AGENT_URL", "http://127.0.0.1:9"),
    ];
    let mut on_env = common.to_vec();
    on_env.extend([
        ("DD_DD_URL", on_url.as_str()),
        ("DD_DOGSTATSD_ORIGIN_DETECTION_CLIENT", "true"),
    ]);
    let mut off_env = common.to_vec();
    off_env.push(("DD_DD_URL", off_url.as_str()));
    let on = AgentProc::spawn(&on_env);
    let off = AgentProc::spawn(&off_env);
    let on_port = on.udp.port().to_string();
    let off_port = off.udp.port().to_string();
    let line = "e2e.client.origin:1|c|#via:udp";
    let send = |prefix: &str, cgroupns: &str, port: &str| {
        docker::run(
            prefix,
            &["--network", "host", "--cgroupns", cgroupns],
            &["sendudp", port, line],
        )
    };
    let host_ns = send("e2e-cih", "host", &on_port);
    let private_ns = send("e2e-cip", "private", &on_port);
    let ignored = send("e2e-cio", "host", &off_port);
    let host_tag = format!("container_name:{}", host_ns.name);
    let private_tag = format!("container_name:{}", private_ns.name);
    let ok = wait_until(&on_intake, 40, |i| {
        let s = i.series();
        !with_tag(&s, "e2e.client.origin", &host_tag).is_empty()
            && !with_tag(&s, "e2e.client.origin", &private_tag).is_empty()
    })
    .await;
    assert!(
        ok,
        "series tagged with both senders' containers missing; got {:?}; log:\n{}",
        on_intake
            .series()
            .iter()
            .filter(|s| s.name == "e2e.client.origin")
            .map(|s| s.tags.clone())
            .collect::<Vec<_>>(),
        on.log_text()
    );
    let s = on_intake.series();
    for (tag, c) in [(&host_tag, &host_ns), (&private_tag, &private_ns)] {
        let series = with_tag(&s, "e2e.client.origin", tag)[0];
        assert!(series.tags.contains(&"via:udp".to_string()));
        assert!(
            series.tags.contains(&format!("container_id:{}", c.id)),
            "{:?}",
            series.tags
        );
    }
    // The agent without the option: the same kind of line arrives, without container tags.
    let ok = wait_until(&off_intake, 30, |i| {
        i.series().iter().any(|s| s.name == "e2e.client.origin")
    })
    .await;
    assert!(
        ok,
        "no series at the second agent; log:\n{}",
        off.log_text()
    );
    for s in off_intake
        .series()
        .iter()
        .filter(|s| s.name == "e2e.client.origin")
    {
        assert!(
            !s.tags.iter().any(|t| t.starts_with("container_")),
            "c: field used although dogstatsd_origin_detection_client is off: {:?}",
            s.tags
        );
    }
    drop((host_ns, private_ns, ignored));
}
