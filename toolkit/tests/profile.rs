//! A CPU profile reaches a test HTTP server the way Datadog's profilers post theirs.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use flate2::read::GzDecoder;
use kelpie_toolkit::{Builder, Target};
use pprof::protos::Message;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

type Upload = (HeaderMap, Bytes);

async fn input(
    State(tx): State<mpsc::Sender<Upload>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let _ = tx.try_send((headers, body));
    StatusCode::ACCEPTED
}

/// Burns CPU until `stop` is set or `limit` passes (the profiler's first start is slow: it loads debug info).
fn burn_cpu(stop: Arc<AtomicBool>, limit: Duration) -> u64 {
    let end = std::time::Instant::now() + limit;
    let mut x = 0u64;
    while std::time::Instant::now() < end && !stop.load(Ordering::Relaxed) {
        for i in 0..10_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
    }
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_upload_is_multipart_with_event_json_and_a_decodable_pprof() {
    let (tx, mut rx) = mpsc::channel::<Upload>(4);
    let app = Router::new()
        .route("/profiling/v1/input", post(input))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let dsd = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (_recorder, guard) = Builder::default()
        .target(Target::Udp {
            host: "127.0.0.1".into(),
            port: dsd.local_addr().unwrap().port(),
        })
        .agent_url(format!("http://{addr}"))
        .service("profiled")
        .env("test")
        .version("3.2.1")
        .runtime_metrics(None)
        .profiling(true)
        .profile_schedule(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .unwrap();
    // Give the sampler CPU time to sample.
    let stop = Arc::new(AtomicBool::new(false));
    let burner = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || burn_cpu(stop, Duration::from_secs(120)))
    };

    let (headers, body) = tokio::time::timeout(Duration::from_secs(120), rx.recv())
        .await
        .expect("a profile within 120 s")
        .expect("server alive");
    stop.store(true, Ordering::Relaxed);
    let _ = burner.await;
    assert_eq!(guard.stats().profile_errors, 0);

    let content_type = headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("multipart/form-data"),
        "{content_type}"
    );
    let parts = common::parse_multipart(content_type, &body);
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["event", "cpu.pprof"]);

    let event = &parts[0];
    assert_eq!(event.filename.as_deref(), Some("event.json"));
    assert_eq!(event.content_type.as_deref(), Some("application/json"));
    let event: serde_json::Value = serde_json::from_slice(&event.body).expect("event.json is JSON");
    assert_eq!(event["attachments"], serde_json::json!(["cpu.pprof"]));
    assert_eq!(event["version"], "4");
    assert_eq!(event["family"], "native");
    let start = humantime::parse_rfc3339(event["start"].as_str().unwrap()).unwrap();
    let end = humantime::parse_rfc3339(event["end"].as_str().unwrap()).unwrap();
    let span = end.duration_since(start).unwrap();
    assert!(
        span >= Duration::from_millis(900) && span < Duration::from_secs(30),
        "{span:?}"
    );
    let tags: Vec<&str> = event["tags_profiler"]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    for t in [
        "service:profiled",
        "env:test",
        "version:3.2.1",
        "language:rust",
    ] {
        assert!(tags.contains(&t), "{t} missing from {tags:?}");
    }
    assert!(tags.iter().any(|t| t.starts_with("runtime-id:")));

    let attachment = &parts[1];
    assert_eq!(attachment.filename.as_deref(), Some("cpu.pprof"));
    let mut raw = Vec::new();
    GzDecoder::new(attachment.body.as_slice())
        .read_to_end(&mut raw)
        .expect("the attachment is gzip");
    let profile = pprof::protos::Profile::decode(raw.as_slice()).expect("a pprof protobuf");
    let types: Vec<&str> = profile
        .sample_type
        .iter()
        .map(|t| profile.string_table[t.ty as usize].as_str())
        .collect();
    assert_eq!(types, ["samples", "cpu"]);
    assert!(
        !profile.sample.is_empty(),
        "burning CPU during the profile yields samples"
    );
    assert!(profile.duration_nanos > 0);

    drop(guard);
    server.abort();
}
