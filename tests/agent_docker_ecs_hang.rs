//! End-to-end, a hung ECS introspection API (issue 13 item 4): the real agent binary against the real Docker
//! engine of this machine and a stand-in for the ECS agent's API that accepts connections and never answers,
//! then answers again. DogStatsD, flushes and deploy detection must not stall. Skipped with a message when no
//! engine is present (a failure under KELPIE_REQUIRE_DOCKER=1).

mod common;
#[path = "../container/tests/common/mod.rs"]
mod docker;

use common::*;
use kelpie_standin::intake::Intake;
use std::time::Duration;

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
    let start_rev = |rev: &str| {
        let labels = ecs_task_labels(&family, rev);
        let args: Vec<&str> = labels.iter().map(String::as_str).collect();
        docker::run("e2e-ecs", &args, &["sleep"])
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
