//! Losing the Docker event stream (as when the daemon restarts) and reconnecting must not repeat events.
//! The collector talks to the real engine through a byte-forwarding Unix-socket relay that the test can cut,
//! which drops every connection the way a daemon restart does (the engine itself is shared, so it is not
//! restarted here).

mod common;

use common::*;
use kelpie_container::{ContainerConfig, Containers};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_event_stream_reconnects_without_duplicate_events() {
    if !docker_ready() {
        return;
    }
    if std::env::var("DOCKER_HOST").is_ok_and(|h| !h.starts_with("unix:///var/run/docker.sock")) {
        eprintln!("SKIPPED: the relay forwards to /var/run/docker.sock only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let relay = Relay::start(&sock);
    let family = unique("kt-rc");
    let label = |rev: u32| {
        vec![
            "--label".to_string(),
            format!("com.amazonaws.ecs.task-definition-family={family}"),
            "--label".to_string(),
            format!("com.amazonaws.ecs.task-definition-version={rev}"),
            "--label".to_string(),
            "com.amazonaws.ecs.cluster=rc".to_string(),
        ]
    };
    let l1 = label(1);
    let _v1 = run(
        "kelpie-rc1",
        &l1.iter().map(String::as_str).collect::<Vec<_>>(),
        &["sleep"],
    );
    let cfg = ContainerConfig {
        docker_host: Some(format!("unix://{}", sock.display())),
        deploy_debounce: Duration::from_millis(500),
        ..config("rc-host")
    };
    let (tx, mut rx) = mpsc::channel(256);
    let cs = Containers::start(cfg, tx)
        .await
        .expect("start through the relay");

    let l2 = label(2);
    let _v2 = run(
        "kelpie-rc2",
        &l2.iter().map(String::as_str).collect::<Vec<_>>(),
        &["sleep"],
    );
    let failing = run("kelpie-rc-exit", &[], &["exit", "5", "200"]);
    let fam_tag = format!("task_family:{family}");
    let fail_tag = format!("container_name:{}", failing.name);
    let mine = |e: &kelpie_container::ContainerEvent| has_tag(e, &fam_tag) || has_tag(e, &fail_tag);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 2 && Instant::now() < deadline {
        if let Some(e) = wait_event(&mut rx, Duration::from_secs(1), mine).await {
            got.push(e);
        }
    }
    assert_eq!(
        got.len(),
        2,
        "one deploy and one exit event before the cut: {got:?}"
    );
    let connects = cs.status().event_stream_connects;

    relay.cut();
    let start = Instant::now();
    while cs.status().event_stream_connects <= connects && start.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        cs.status().event_stream_connects > connects,
        "the watcher reconnected"
    );
    let again = collect_events(&mut rx, Duration::from_secs(3), mine).await;
    assert!(
        again.is_empty(),
        "replayed events were not sent again: {again:?}"
    );
    cs.collect()
        .await
        .expect("collect works after the reconnect");
}
