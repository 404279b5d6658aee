//! ECS deploy detection against the real Docker engine: containers labelled like ECS tasks, a revision change,
//! a rollback; with a stand-in for the ECS agent's introspection API and without one.

mod common;

use axum::{extract::State, routing::get, Json, Router};
use common::*;
use kelpie_container::{ContainerConfig, ContainerEvent, Containers};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const DEBOUNCE: Duration = Duration::from_secs(2);

/// The ECS agent introspection API as documented: `/v1/metadata` and `/v1/tasks`.
#[derive(Default)]
struct FakeEcs {
    tasks: Mutex<Vec<Value>>,
    task_requests: AtomicU64,
}

async fn metadata() -> Json<Value> {
    Json(json!({
        "Cluster": "kelpie-test-cluster",
        "ContainerInstanceArn": "arn:aws:ecs:us-east-1:123456789012:container-instance/kelpie-test-cluster/0123",
        "Version": "Amazon ECS Agent - v1.80.0 (abcdef0)"
    }))
}

async fn tasks(State(s): State<Arc<FakeEcs>>) -> Json<Value> {
    s.task_requests.fetch_add(1, Ordering::Relaxed);
    Json(json!({ "Tasks": s.tasks.lock().clone() }))
}

async fn serve_ecs(state: Arc<FakeEcs>) -> String {
    let app = Router::new()
        .route("/v1/metadata", get(metadata))
        .route("/v1/tasks", get(tasks))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn task_arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/kelpie-test-cluster/{id}")
}

/// Starts one task: one container per name, labelled as the ECS agent labels them. In parallel, as ECS does.
fn start_task(
    family: &str,
    rev: u32,
    task: &str,
    names: &[&str],
    cluster_label: Option<&str>,
) -> Vec<Ctr> {
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                s.spawn(move || {
                    let labels = [
                        format!("com.amazonaws.ecs.task-definition-family={family}"),
                        format!("com.amazonaws.ecs.task-definition-version={rev}"),
                        format!("com.amazonaws.ecs.task-arn={}", task_arn(task)),
                        format!("com.amazonaws.ecs.container-name={n}"),
                    ];
                    let mut args: Vec<String> = labels
                        .iter()
                        .flat_map(|l| ["--label".to_string(), l.clone()])
                        .collect();
                    if let Some(c) = cluster_label {
                        args.push("--label".into());
                        args.push(format!("com.amazonaws.ecs.cluster={c}"));
                    }
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    run(&format!("ecs-{family}-{rev}-{n}"), &args, &["sleep"])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn ecs_task(family: &str, rev: u32, task: &str, status: &str, ctrs: &[Ctr]) -> Value {
    json!({
        "Arn": task_arn(task),
        "DesiredStatus": "RUNNING",
        "KnownStatus": status,
        "Family": family,
        "Version": rev.to_string(),
        "Containers": ctrs.iter().map(|c| json!({"DockerId": c.id, "DockerName": c.name, "Name": c.name})).collect::<Vec<_>>()
    })
}

fn is_deploy_of(e: &ContainerEvent, family: &str) -> bool {
    has_tag(e, "event_type:deploy") && has_tag(e, &format!("task_family:{family}"))
}

fn cfg(ecs_url: &str) -> ContainerConfig {
    ContainerConfig {
        ecs_agent_url: ecs_url.to_string(),
        deploy_debounce: DEBOUNCE,
        ..config("deploy-host")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_change_with_ecs_agent_gives_one_event_then_one_rollback() {
    if !docker_ready() {
        return;
    }
    let family = unique("kt-web");
    let ecs = Arc::new(FakeEcs::default());
    let url = serve_ecs(ecs.clone()).await;
    // Revision 41 runs before the agent starts: the baseline.
    let t41 = start_task(&family, 41, "t41a", &["web", "sidecar"], None);
    ecs.tasks
        .lock()
        .push(ecs_task(&family, 41, "t41a", "RUNNING", &t41));
    let (tx, mut rx) = mpsc::channel(256);
    let cs = Containers::start(cfg(&url), tx).await.expect("start");

    // Two tasks of revision 42 (two containers each) start; the ECS agent reports them PENDING at first.
    let t42a = start_task(&family, 42, "t42a", &["web", "sidecar"], None);
    let t42b = start_task(&family, 42, "t42b", &["web", "sidecar"], None);
    {
        let mut t = ecs.tasks.lock();
        t.push(ecs_task(&family, 42, "t42a", "PENDING", &t42a));
        t.push(ecs_task(&family, 42, "t42b", "PENDING", &t42b));
    }
    let early = collect_events(&mut rx, DEBOUNCE * 2, |e| is_deploy_of(e, &family)).await;
    assert!(
        early.is_empty(),
        "no event while ECS says PENDING: {early:?}"
    );
    assert!(
        ecs.task_requests.load(Ordering::Relaxed) >= 1,
        "the ECS agent was asked"
    );
    for t in ecs.tasks.lock().iter_mut() {
        t["KnownStatus"] = json!("RUNNING");
    }
    let ev = wait_event(&mut rx, DEBOUNCE * 4, |e| is_deploy_of(e, &family))
        .await
        .expect("deploy event");
    assert_eq!(
        ev.title,
        format!("ECS deploy: {family} rev 41 → 42 on deploy-host")
    );
    assert_eq!(ev.alert_type, "info");
    assert_eq!(ev.source_type_name, "docker");
    assert_eq!(
        ev.aggregation_key,
        Some(format!("ecs_deploy:kelpie-test-cluster:{family}:42"))
    );
    for t in [
        "task_version:42",
        "previous_task_version:41",
        "ecs_cluster_name:kelpie-test-cluster", // from /v1/metadata: the labels carry no cluster
        "docker_image:kelpie-test/tool:latest",
        "short_image:tool",
    ] {
        assert!(has_tag(&ev, t), "missing {t} in {:?}", ev.tags);
    }
    assert!(
        ev.text.contains("t42a") && ev.text.contains("t42b"),
        "{}",
        ev.text
    );
    let dup = collect_events(&mut rx, DEBOUNCE * 2, |e| is_deploy_of(e, &family)).await;
    assert!(dup.is_empty(), "exactly one event for 41 → 42: {dup:?}");

    // Old tasks stop, then revision 41 comes back: one rollback event.
    drop(t41);
    let back = start_task(&family, 41, "t41b", &["web", "sidecar"], None);
    ecs.tasks
        .lock()
        .push(ecs_task(&family, 41, "t41b", "RUNNING", &back));
    let rb = wait_event(&mut rx, DEBOUNCE * 4, |e| is_deploy_of(e, &family))
        .await
        .expect("rollback event");
    assert_eq!(rb.alert_type, "warning");
    assert_eq!(
        rb.title,
        format!("ECS deploy: {family} rev 42 → 41 on deploy-host")
    );
    assert!(has_tag(&rb, "previous_task_version:42") && has_tag(&rb, "task_version:41"));
    let dup = collect_events(&mut rx, DEBOUNCE * 2, |e| is_deploy_of(e, &family)).await;
    assert!(dup.is_empty(), "exactly one rollback event: {dup:?}");
    assert_eq!(cs.status().ecs_reachable, Some(true));
    assert_eq!(
        cs.status().ecs_cluster.as_deref(),
        Some("kelpie-test-cluster")
    );
    drop((t42a, t42b, back));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ecs_agent_labels_alone_suffice() {
    if !docker_ready() {
        return;
    }
    let family = unique("kt-api");
    let cluster = "arn:aws:ecs:eu-west-1:123456789012:cluster/labels-only";
    let _t41 = start_task(&family, 41, "a41", &["api"], Some(cluster));
    let (tx, mut rx) = mpsc::channel(256);
    let cs = Containers::start(cfg("http://127.0.0.1:9"), tx)
        .await
        .expect("start");
    let _t42 = start_task(&family, 42, "a42", &["api"], Some(cluster));
    let ev = wait_event(&mut rx, DEBOUNCE * 4, |e| is_deploy_of(e, &family))
        .await
        .expect("deploy event");
    assert_eq!(ev.alert_type, "info");
    assert!(
        has_tag(&ev, "ecs_cluster_name:labels-only"),
        "{:?}",
        ev.tags
    );
    assert_eq!(
        ev.aggregation_key,
        Some(format!("ecs_deploy:labels-only:{family}:42"))
    );
    let dup = collect_events(&mut rx, DEBOUNCE * 2, |e| is_deploy_of(e, &family)).await;
    assert!(dup.is_empty(), "{dup:?}");
    assert_eq!(cs.status().ecs_reachable, Some(false));
    // Both revisions still run: counted per image and task family.
    let points = cs.collect().await.expect("collect");
    let running = points
        .iter()
        .find(|p| {
            p.name == "docker.containers.running"
                && p.tags.contains(&format!("task_family:{family}"))
        })
        .expect("running count of the family");
    assert_eq!(running.value, 2.0);
    assert!(running
        .tags
        .contains(&"image_name:kelpie-test/tool".to_string()));
}
