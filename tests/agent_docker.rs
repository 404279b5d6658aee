//! End-to-end: the real agent binary against the real Docker engine of this machine, forwarding to the intake
//! stand-in. Containers are started from the locally built FROM-scratch test image (testimages/); nothing is
//! mocked. Skipped with a message when no engine is present (a failure under KELPIE_REQUIRE_DOCKER=1).

mod common;
#[path = "../container/tests/common/mod.rs"]
mod docker;

use common::*;
use kelpie_standin::intake::{Intake, ReceivedSeries};
use std::time::Duration;

fn with_tag<'a>(series: &'a [ReceivedSeries], name: &str, tag: &str) -> Vec<&'a ReceivedSeries> {
    series
        .iter()
        .filter(|s| s.name == name && s.tags.iter().any(|t| t == tag))
        .collect()
}

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

/// A stand-in for the ECS agent's introspection API on 127.0.0.1: while `hang` is set it accepts connections
/// and never answers (holding each one open); after, it answers `/v1/metadata` with `cluster` and `/v1/tasks`
/// with every `(family, version)` of `running` as a RUNNING task.
struct FakeEcs {
    addr: std::net::SocketAddr,
    hang: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicU64>,
    running: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeEcs {
    fn start(cluster: &str) -> FakeEcs {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering::Relaxed;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let fake = FakeEcs {
            addr: listener.local_addr().unwrap(),
            hang: Default::default(),
            accepted: Default::default(),
            running: Default::default(),
            stop: Default::default(),
        };
        fake.hang.store(true, Relaxed);
        let (hang, accepted, running, stop) = (
            fake.hang.clone(),
            fake.accepted.clone(),
            fake.running.clone(),
            fake.stop.clone(),
        );
        let cluster = cluster.to_string();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                accepted.fetch_add(1, Relaxed);
                if hang.load(Relaxed) {
                    held.push(s);
                    continue;
                }
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let body = if req.starts_with("GET /v1/metadata") {
                    serde_json::json!({"Cluster": cluster, "Version": "fake"})
                } else {
                    let tasks: Vec<_> = running
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(f, v)| {
                            serde_json::json!({"Arn": format!("arn:{f}:{v}"), "DesiredStatus": "RUNNING",
                                "KnownStatus": "RUNNING", "Family": f, "Version": v, "Containers": []})
                        })
                        .collect();
                    serde_json::json!({ "Tasks": tasks })
                }
                .to_string();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        fake
    }
}

impl Drop for FakeEcs {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Issue 13 item 4, a hung ECS introspection API: it accepts connections and never answers. DogStatsD keeps
/// flowing, flushes stay on time, a deploy is still detected (from the labels, after the client's 2 s
/// timeout); when the API answers again, the next deploy is confirmed through it (its cluster is on the event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_ecs_api_stalls_neither_dogstatsd_nor_flushes_nor_deploys() {
    use std::sync::atomic::Ordering::Relaxed;
    if !docker::docker_ready() {
        return;
    }
    let intake = Intake::start().await;
    let ecs = FakeEcs::start("arn:aws:ecs:eu-west-1:1:cluster/back-cluster");
    let url = intake.url();
    let ecs_url = format!("http://{}", ecs.addr);
    let mut agent = AgentProc::spawn(&[
        ("DD_API_KEY", "e2e-key"),
        ("DD_DD_URL", url.as_str()),
        ("DD_CONTAINER_COLLECTION", "true"),
        ("DD_ECS_AGENT_URL", ecs_url.as_str()),
    ]);
    let family = docker::unique("hungfam");
    let fam_label = format!("com.amazonaws.ecs.task-definition-family={family}");
    let start_rev = |rev: &str| {
        let rev_label = format!("com.amazonaws.ecs.task-definition-version={rev}");
        docker::run(
            "e2e-ecs",
            &[
                "--label",
                &fam_label,
                "--label",
                &rev_label,
                "--label",
                "com.amazonaws.ecs.container-name=app",
            ],
            &["sleep"],
        )
    };
    let mut v1 = Some(start_rev("1"));
    let f0 = agent.flushes();
    let t0 = std::time::Instant::now();
    let mut sent = 0u64;
    let mut v2 = None;
    for i in 0..20 {
        if i == 4 {
            // A deploy while the API hangs: revision 2 replaces revision 1.
            v2 = Some(start_rev("2"));
        }
        if i == 6 {
            drop(v1.take());
        }
        agent.send(&"e2e.ecs.hung:1|c\n".repeat(10));
        sent += 10;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = t0.elapsed().as_secs();
    let flushed = agent.flushes() - f0;
    let ok = wait_until(&intake, 20, |i| {
        counted(&i.series(), "e2e.ecs.hung") >= sent as f64
    })
    .await;
    assert!(
        ok,
        "only {} of {sent}",
        counted(&intake.series(), "e2e.ecs.hung")
    );
    let title = format!("ECS deploy: {family} rev 1 → 2");
    let ok = wait_until(&intake, 30, |i| {
        i.events()
            .iter()
            .any(|e| e["title"].as_str().is_some_and(|t| t.starts_with(&title)))
    })
    .await;
    assert!(
        ok,
        "no deploy event while the API hangs; events: {:?}",
        intake.events()
    );
    let hung_conns = ecs.accepted.load(Relaxed);
    let st = agent.status_json();
    eprintln!(
        "hung ECS API: {sent} samples sent in {elapsed} s, {flushed} flushes, {hung_conns} connections held unanswered, ecs status {}",
        st["collectors"]["ecs"]
    );
    // Flushes stay on time: about one a second (1 s interval); at least one every 2 s on a busy machine.
    assert!(flushed * 2 >= elapsed, "{flushed} flushes in {elapsed} s");
    assert!(hung_conns >= 1, "the agent never asked the ECS API");
    assert_eq!(
        st["collectors"]["ecs"]["status"], "unreachable (deploys detected from container labels)",
        "{st}"
    );
    // The API answers again; the next deploy is confirmed through it and carries its cluster.
    ecs.running
        .lock()
        .unwrap()
        .push((family.clone(), "3".to_string()));
    ecs.hang.store(false, Relaxed);
    let v3 = start_rev("3");
    drop(v2);
    let title3 = format!("ECS deploy: {family} rev 2 → 3");
    let ok = wait_until(&intake, 30, |i| {
        i.events().iter().any(|e| {
            e["title"].as_str().is_some_and(|t| t.starts_with(&title3))
                && e["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == "ecs_cluster_name:back-cluster"))
        })
    })
    .await;
    assert!(
        ok,
        "no confirmed deploy after the API came back; events: {:?}",
        intake.events()
    );
    let st = agent.status_json();
    assert_eq!(st["collectors"]["ecs"]["status"], "ok", "{st}");
    let deploys = intake
        .events()
        .into_iter()
        .filter(|e| e["title"].as_str().is_some_and(|t| t.contains(&family)))
        .count();
    assert_eq!(deploys, 2, "{:?}", intake.events());
    let log = agent.log_text();
    assert!(!log.contains("panicked"), "{log}");
    let exit = agent.terminate(Duration::from_secs(10));
    assert!(exit.success(), "{exit}");
    drop(v3);
}

/// Issue 13 item 4: Docker's socket is missing when the agent starts, appears later, and then every connection
/// to the daemon is cut (as a daemon restart does) while the agent runs. The agent talks to the real engine
/// through a Unix-socket relay the test controls. DogStatsD keeps flowing and flushes stay on time throughout;
/// collection starts once the socket appears (the agent retries every 60 s) and resumes after the cut; each
/// failing container gives exactly one error event, before and after the reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_missing_at_start_then_cut_keeps_dogstatsd_and_loses_no_die_event() {
    if !docker::docker_ready() {
        return;
    }
    if std::env::var("DOCKER_HOST").is_ok_and(|h| !h.starts_with("unix:///var/run/docker.sock")) {
        eprintln!("SKIPPED: the relay forwards to /var/run/docker.sock only");
        return;
    }
    let intake = Intake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let docker_host = format!("unix://{}", sock.display());
    let url = intake.url();
    let mut agent = AgentProc::spawn(&[
        ("DD_API_KEY", "e2e-key"),
        ("DD_DD_URL", url.as_str()),
        ("DD_CONTAINER_COLLECTION", "true"),
        ("DOCKER_HOST", docker_host.as_str()),
        ("DD_ECS_AGENT_URL", "http://127.0.0.1:9"),
    ]);
    let f0 = agent.flushes();
    let t0 = std::time::Instant::now();
    let mut sent = 0u64;
    let mut send = |a: &AgentProc| {
        a.send(&"e2e.dk.count:1|c\n".repeat(10));
        sent += 10;
    };
    for _ in 0..6 {
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let st = agent.status_json();
    eprintln!(
        "docker status without its socket: {}",
        st["collectors"]["docker"]
    );
    assert_ne!(st["collectors"]["docker"]["status"], "ok", "{st}");
    // The socket appears.
    let relay = docker::Relay::start(&sock);
    let appeared = std::time::Instant::now();
    let burner = docker::run("e2e-dkburn", &[], &["sleep"]);
    let burner_tag = format!("container_name:{}", burner.name);
    let has_burner = |i: &kelpie_standin::intake::IntakeHandle| {
        !with_tag(&i.series(), "docker.cpu.usage", &burner_tag).is_empty()
    };
    // Bounded: the agent retries Docker every 60 s.
    for _ in 0..180 {
        if has_burner(&intake) {
            break;
        }
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        has_burner(&intake),
        "no container metrics once the socket appeared; log:\n{}",
        agent.log_text()
    );
    let to_collect = appeared.elapsed();
    let error_events = |i: &kelpie_standin::intake::IntakeHandle, tag: &str| {
        i.events()
            .iter()
            .filter(|e| {
                e["alert_type"] == "error"
                    && e["tags"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|x| x == tag))
            })
            .count()
    };
    let before = docker::run("e2e-dkexit", &[], &["exit", "3", "200"]);
    let before_tag = format!("container_name:{}", before.name);
    for _ in 0..60 {
        if error_events(&intake, &before_tag) > 0 {
            break;
        }
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        error_events(&intake, &before_tag),
        1,
        "{:?}",
        intake.events()
    );
    // Every connection to the daemon is cut; the relay keeps accepting new ones.
    relay.cut();
    let cut = std::time::Instant::now();
    let cpu_at_cut = with_tag(&intake.series(), "docker.cpu.usage", &burner_tag).len();
    let after = docker::run("e2e-dkexit", &[], &["exit", "4", "200"]);
    let after_tag = format!("container_name:{}", after.name);
    for _ in 0..60 {
        if error_events(&intake, &after_tag) > 0
            && with_tag(&intake.series(), "docker.cpu.usage", &burner_tag).len() > cpu_at_cut + 1
        {
            break;
        }
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let to_resume = cut.elapsed();
    // Replays after the reconnect would show up within a few flushes.
    for _ in 0..6 {
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = t0.elapsed().as_secs();
    let flushed = agent.flushes() - f0;
    assert_eq!(
        error_events(&intake, &after_tag),
        1,
        "die after the cut: {:?}",
        intake.events()
    );
    assert_eq!(
        error_events(&intake, &before_tag),
        1,
        "die before the cut, replayed? {:?}",
        intake.events()
    );
    assert!(
        with_tag(&intake.series(), "docker.cpu.usage", &burner_tag).len() > cpu_at_cut + 1,
        "container collection did not resume after the cut"
    );
    let ok = wait_until(&intake, 20, |i| {
        counted(&i.series(), "e2e.dk.count") >= sent as f64
    })
    .await;
    assert!(
        ok,
        "only {} of {sent}",
        counted(&intake.series(), "e2e.dk.count")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = counted(&intake.series(), "e2e.dk.count");
    eprintln!(
        "docker faults: {sent} samples sent, {got} received; {flushed} flushes in {elapsed} s; container metrics {:.1} s after the socket appeared; events and metrics {:.1} s after the cut",
        to_collect.as_secs_f64(),
        to_resume.as_secs_f64()
    );
    assert_eq!(got, sent as f64);
    assert!(flushed * 2 >= elapsed, "{flushed} flushes in {elapsed} s");
    let exit = agent.terminate(Duration::from_secs(10));
    assert!(exit.success(), "{exit}");
    assert!(!agent.log_text().contains("panicked"));
    drop((burner, before, after, relay));
}

/// Issue 13 item 4, a real Docker daemon restart while the agent runs. The engine of this machine is shared,
/// so the test starts a daemon of its own beside it (`docker::PrivateDockerd`: own socket, data root, exec
/// root, containerd and network namespace; no bridge, no iptables) and points the agent at it with
/// `DOCKER_HOST`; the host's interfaces (the shared engine's docker0) are checked unchanged at the end. A task
/// container (ECS labels, revision 1, `--restart always`) runs throughout; one container fails before the
/// restart, the daemon is stopped (SIGTERM; it kills the revision-1 container, which ignores SIGTERM as PID 1,
/// after its 1 s stop timeout), stays down a few seconds, starts again on the same data root (restarting the
/// revision-1 container), and then revision 2 starts and a second container fails. DogStatsD keeps flowing
/// and flushes stay on time throughout; the agent logs the lost event stream and reconnects; each failing
/// container gives exactly one error event and the revision change exactly one deploy event (the revision-1
/// container's restart by the daemon is not a deploy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_docker_daemon_restart_keeps_dogstatsd_and_loses_or_repeats_no_event() {
    if !docker::docker_ready() {
        return;
    }
    let host_interfaces = docker::host_interfaces();
    let mut dockerd = docker::PrivateDockerd::start()
        .unwrap_or_else(|e| panic!("cannot start a private dockerd beside the shared engine: {e}"));
    let intake = Intake::start().await;
    let url = intake.url();
    let docker_host = dockerd.host.clone();
    let mut agent = AgentProc::spawn(&[
        ("DD_API_KEY", "e2e-key"),
        ("DD_DD_URL", url.as_str()),
        ("DD_CONTAINER_COLLECTION", "true"),
        ("DOCKER_HOST", docker_host.as_str()),
        ("DD_ECS_AGENT_URL", "http://127.0.0.1:9"),
    ]);
    let f0 = agent.flushes();
    let t0 = std::time::Instant::now();
    let mut sent = 0u64;
    let mut send = |a: &AgentProc| {
        a.send(&"e2e.rs.count:1|c\n".repeat(10));
        sent += 10;
    };
    let family = docker::unique("rsfam");
    let fam_label = format!("com.amazonaws.ecs.task-definition-family={family}");
    let task = |dockerd: &docker::PrivateDockerd, rev: &str, extra: &[&str]| {
        let rev_label = format!("com.amazonaws.ecs.task-definition-version={rev}");
        let mut args = vec![
            "--label",
            &fam_label,
            "--label",
            &rev_label,
            "--label",
            "com.amazonaws.ecs.container-name=app",
        ];
        args.extend_from_slice(extra);
        dockerd.run("e2e-rstask", &args, &["sleep"])
    };
    let v1 = task(
        &dockerd,
        "1",
        &["--restart", "always", "--stop-timeout", "1"],
    );
    let v1_tag = format!("container_name:{}", v1.name);
    let v1_cpu = |i: &kelpie_standin::intake::IntakeHandle| {
        with_tag(&i.series(), "docker.cpu.usage", &v1_tag).len()
    };
    for _ in 0..60 {
        if v1_cpu(&intake) > 0 {
            break;
        }
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        v1_cpu(&intake) > 0,
        "no container metrics from the private daemon; log:\n{}",
        agent.log_text()
    );
    let error_events = |i: &kelpie_standin::intake::IntakeHandle, tag: &str| {
        i.events()
            .iter()
            .filter(|e| {
                e["alert_type"] == "error"
                    && e["tags"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|x| x == tag))
            })
            .count()
    };
    let before = dockerd.run("e2e-rsexit", &[], &["exit", "3", "200"]);
    let before_tag = format!("container_name:{}", before.name);
    for _ in 0..60 {
        if error_events(&intake, &before_tag) > 0 {
            break;
        }
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        error_events(&intake, &before_tag),
        1,
        "die before the restart: {:?}",
        intake.events()
    );
    let v1_pid_before = dockerd.inspect(&v1.id, "{{.State.Pid}}");
    // The restart: SIGTERM, and DogStatsD keeps coming while dockerd stops its containers and exits.
    let stopping = std::time::Instant::now();
    dockerd.begin_stop();
    for _ in 0..120 {
        if dockerd.exited() {
            break;
        }
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        dockerd.exited(),
        "dockerd did not exit within 60 s of SIGTERM:\n{}",
        dockerd.log_tail()
    );
    let stop_took = stopping.elapsed();
    // Down for 3 s; the agent's status says so.
    for _ in 0..6 {
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let down = agent.status_json()["collectors"]["docker"].clone();
    assert_eq!(
        down["status"], "error",
        "docker status while dockerd is down: {down}"
    );
    let cpu_at_restart = v1_cpu(&intake);
    dockerd
        .launch()
        .unwrap_or_else(|e| panic!("dockerd did not start again: {e}"));
    let restarted = std::time::Instant::now();
    let v1_pid_after = dockerd.inspect(&v1.id, "{{.State.Pid}}");
    let v2 = task(&dockerd, "2", &[]);
    let after = dockerd.run("e2e-rsexit", &[], &["exit", "4", "200"]);
    let after_tag = format!("container_name:{}", after.name);
    let deploy_title = format!("ECS deploy: {family} rev 1 → 2");
    let deploys = |i: &kelpie_standin::intake::IntakeHandle| {
        i.events()
            .iter()
            .filter(|e| e["title"].as_str().is_some_and(|t| t.contains(&family)))
            .cloned()
            .collect::<Vec<_>>()
    };
    // When the failed container's event, the revision-1 container's metrics and the deploy event arrived.
    let (mut t_event, mut t_metrics, mut t_deploy) = (None, None, None);
    for _ in 0..120 {
        let now = Some(restarted.elapsed().as_secs_f64());
        if t_event.is_none() && error_events(&intake, &after_tag) > 0 {
            t_event = now;
        }
        if t_metrics.is_none() && v1_cpu(&intake) > cpu_at_restart + 1 {
            t_metrics = now;
        }
        if t_deploy.is_none() && !deploys(&intake).is_empty() {
            t_deploy = now;
        }
        if t_event.is_some() && t_metrics.is_some() && t_deploy.is_some() {
            break;
        }
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Replays after the reconnect would show up within a few flushes.
    for _ in 0..6 {
        send(&agent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = t0.elapsed().as_secs();
    let flushed = agent.flushes() - f0;
    assert_ne!(
        v1_pid_before, v1_pid_after,
        "the daemon restart did not restart the revision-1 container"
    );
    assert_eq!(
        error_events(&intake, &after_tag),
        1,
        "die after the restart: {:?}",
        intake.events()
    );
    assert_eq!(
        error_events(&intake, &before_tag),
        1,
        "die before the restart, replayed? {:?}",
        intake.events()
    );
    // The revision-1 container was killed (137) by the daemon's shutdown: reported at most once (the die is
    // sent on the event stream before the daemon exits; it is lost if the stream was already gone).
    let v1_deaths = error_events(&intake, &v1_tag);
    assert!(v1_deaths <= 1, "{:?}", intake.events());
    let d = deploys(&intake);
    assert_eq!(d.len(), 1, "exactly one deploy event: {d:?}");
    assert!(
        d[0]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with(&deploy_title)),
        "{d:?}"
    );
    assert!(
        v1_cpu(&intake) > cpu_at_restart + 1,
        "container collection did not resume after the restart"
    );
    let st = agent.status_json();
    assert_eq!(st["collectors"]["docker"]["status"], "ok", "{st}");
    let log = agent.log_text();
    let lost = log
        .lines()
        .filter(|l| l.contains("Docker event stream") && l.contains("reconnecting"))
        .count();
    assert!(
        lost >= 1,
        "the agent did not log the lost event stream; log:\n{log}"
    );
    let back: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Docker answers again"))
        .collect();
    assert_eq!(back.len(), 1, "one reconnect, said once; log:\n{log}");
    let ok = wait_until(&intake, 20, |i| {
        counted(&i.series(), "e2e.rs.count") >= sent as f64
    })
    .await;
    assert!(
        ok,
        "only {} of {sent}",
        counted(&intake.series(), "e2e.rs.count")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = counted(&intake.series(), "e2e.rs.count");
    eprintln!(
        "docker daemon restart: {sent} samples sent, {got} received; {flushed} flushes in {elapsed} s; dockerd stopped in {:.1} s; \
         error events for the container the restart killed: {v1_deaths}; after dockerd was back: the die event at {t_event:?} s, \
         metrics at {t_metrics:?} s, the deploy event at {t_deploy:?} s; {lost} event-stream failure lines; {}; \
         docker status while down: {down}",
        stop_took.as_secs_f64(),
        back[0]
    );
    assert_eq!(got, sent as f64);
    assert!(flushed * 2 >= elapsed, "{flushed} flushes in {elapsed} s");
    let exit = agent.terminate(Duration::from_secs(10));
    assert!(exit.success(), "{exit}");
    assert!(!agent.log_text().contains("panicked"));
    drop((v1, v2, before, after, dockerd));
    // The shared engine's bridge (docker0) and every other host interface are still there.
    assert_eq!(docker::host_interfaces(), host_interfaces);
}
