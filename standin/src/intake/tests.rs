use super::*;
use prost::Message;
use serde_json::json;
use std::io::Write;

fn series_body() -> Vec<u8> {
    proto::MetricPayload {
        series: vec![proto::MetricSeries {
            resources: vec![proto::Resource {
                r#type: "host".into(),
                name: "h1".into(),
            }],
            metric: "app.requests".into(),
            tags: vec!["env:prod".into()],
            points: vec![proto::MetricPoint {
                value: 2.5,
                timestamp: 1000,
            }],
            r#type: 2,
            interval: 10,
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn zstd(b: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(b, 1).unwrap()
}

async fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, v)
}

const PB: (&str, &str) = ("content-type", "application/x-protobuf");
const KEY: (&str, &str) = ("dd-api-key", "k");

#[tokio::test]
async fn series_protobuf_zstd_accepted_and_decoded() {
    let intake = Intake::start().await;
    let url = format!("{}/api/v2/series", intake.url());
    let (status, body) = post(
        &url,
        &[KEY, PB, ("content-encoding", "zstd")],
        zstd(&series_body()),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(body, json!({ "errors": [] }));
    let s = intake.series();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].name, "app.requests");
    assert_eq!(s[0].host.as_deref(), Some("h1"));
    assert_eq!(s[0].kind, 2);
    assert_eq!(s[0].interval, 10);
    assert_eq!(s[0].points, vec![(1000, 2.5)]);
    assert_eq!(s[0].tags, vec!["env:prod"]);
    let reqs = intake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].status, 202);
    assert_eq!(reqs[0].header("DD-API-KEY"), Some("k"));
}

#[tokio::test]
async fn series_json_gzip_and_deflate() {
    let intake = Intake::start().await;
    let url = format!("{}/api/v2/series", intake.url());
    let body = serde_json::to_vec(&json!({"series": [{
        "metric": "a.b", "type": 3, "points": [{"timestamp": 5, "value": 1.5}],
        "resources": [{"name": "web1", "type": "host"}], "tags": ["x:y"]
    }]}))
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).unwrap();
    let json_ct = ("content-type", "application/json");
    let (status, _) = post(
        &url,
        &[KEY, json_ct, ("content-encoding", "gzip")],
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zl.write_all(&body).unwrap();
    let (status, _) = post(
        &url,
        &[KEY, json_ct, ("content-encoding", "deflate")],
        zl.finish().unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    let s = intake.series();
    assert_eq!(s.len(), 2);
    assert!(s
        .iter()
        .all(|s| s.name == "a.b" && s.host.as_deref() == Some("web1") && s.format == "json"));
    assert_eq!(s[0].points, vec![(5, 1.5)]);
}

#[tokio::test]
async fn refusals() {
    let intake = Intake::start().await;
    let url = format!("{}/api/v2/series", intake.url());
    // No key.
    assert_eq!(post(&url, &[PB], series_body()).await.0, 403);
    // Empty key.
    assert_eq!(
        post(&url, &[("dd-api-key", ""), PB], series_body()).await.0,
        403
    );
    // Unknown encoding.
    assert_eq!(
        post(&url, &[KEY, PB, ("content-encoding", "br")], series_body())
            .await
            .0,
        415
    );
    // Corrupt zstd.
    assert_eq!(
        post(
            &url,
            &[KEY, PB, ("content-encoding", "zstd")],
            b"nope".to_vec()
        )
        .await
        .0,
        400
    );
    // Corrupt protobuf.
    assert_eq!(post(&url, &[KEY, PB], vec![0xff, 0xff, 0xff]).await.0, 400);
    // Unknown content type.
    assert_eq!(
        post(&url, &[KEY, ("content-type", "text/plain")], series_body())
            .await
            .0,
        415
    );
    // Too large compressed.
    assert_eq!(post(&url, &[KEY, PB], vec![0u8; 512_001]).await.0, 413);
    // Too large once decompressed (zeros compress very well).
    let (status, _) = post(
        &url,
        &[KEY, PB, ("content-encoding", "zstd")],
        zstd(&vec![0u8; 5_242_881]),
    )
    .await;
    assert_eq!(status, 413);
    // Unknown path.
    assert_eq!(
        post(
            &format!("{}/api/v1/series_typo", intake.url()),
            &[KEY],
            vec![]
        )
        .await
        .0,
        404
    );
    assert!(intake.series().is_empty());
    assert_eq!(intake.requests().len(), 9);
}

#[tokio::test]
async fn sketches_decoded() {
    let intake = Intake::start().await;
    let body = proto::SketchPayload {
        sketches: vec![proto::Sketch {
            metric: "lat".into(),
            host: "h".into(),
            tags: vec!["a:b".into()],
            dogsketches: vec![proto::Dogsketch {
                ts: 10,
                cnt: 3,
                min: 1.0,
                max: 2.0,
                avg: 1.5,
                sum: 4.5,
                k: vec![-5, 0, 7],
                n: vec![1, 1, 1],
            }],
            ..Default::default()
        }],
        metadata: Some(proto::CommonMetadata::default()),
    }
    .encode_to_vec();
    let url = format!("{}/api/beta/sketches", intake.url());
    assert_eq!(
        post(&url, &[KEY, PB, ("content-encoding", "zstd")], zstd(&body))
            .await
            .0,
        202
    );
    let s = intake.sketches();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].points[0].k, vec![-5, 0, 7]);
    assert_eq!(s[0].points[0].cnt, 3);
}

#[tokio::test]
async fn events_checks_validate() {
    let intake = Intake::start().await;
    let ev_url = format!("{}/api/v1/events", intake.url());
    let json_ct = ("content-type", "application/json");
    let ok = serde_json::to_vec(&json!({"title": "t", "text": "x", "tags": ["a:b"]})).unwrap();
    let (status, body) = post(&ev_url, &[KEY, json_ct], ok).await;
    assert_eq!(status, 202);
    assert_eq!(body["status"], "ok");
    let long = serde_json::to_vec(&json!({"title": "t".repeat(101), "text": "x"})).unwrap();
    // Accepted as Datadog does (it displays it truncated), kept as sent.
    assert_eq!(post(&ev_url, &[KEY, json_ct], long).await.0, 202);
    let bad_type =
        serde_json::to_vec(&json!({"title": "t", "text": "x", "alert_type": "fatal"})).unwrap();
    assert_eq!(post(&ev_url, &[KEY, json_ct], bad_type).await.0, 400);
    let no_text = serde_json::to_vec(&json!({"title": "t"})).unwrap();
    assert_eq!(post(&ev_url, &[KEY, json_ct], no_text).await.0, 400);
    assert_eq!(intake.events().len(), 2);
    assert_eq!(intake.events()[1]["title"].as_str().unwrap().len(), 101);

    let cr_url = format!("{}/api/v1/check_run", intake.url());
    let checks =
        serde_json::to_vec(&json!([{"check": "c", "host_name": "h", "status": 2, "tags": []}]))
            .unwrap();
    assert_eq!(post(&cr_url, &[KEY, json_ct], checks).await.0, 202);
    let bad = serde_json::to_vec(&json!([{"check": "c", "host_name": "h", "status": 7}])).unwrap();
    assert_eq!(post(&cr_url, &[KEY, json_ct], bad).await.0, 400);
    assert_eq!(intake.service_checks().len(), 1);

    let client = reqwest::Client::new();
    let v = client
        .get(format!("{}/api/v1/validate", intake.url()))
        .header("DD-API-KEY", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(v.status().as_u16(), 200);
    assert_eq!(v.json::<Value>().await.unwrap(), json!({"valid": true}));
    let v = client
        .get(format!("{}/api/v1/validate", intake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(v.status().as_u16(), 403);

    let all: Value = client
        .get(format!("{}/_standin/received", intake.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["events"].as_array().unwrap().len(), 2);
    assert_eq!(all["service_checks"][0]["check"], "c");
}

#[tokio::test]
async fn configured_api_key_only() {
    let intake = Intake::start_with(IntakeConfig {
        api_key: Some("right".into()),
        ..IntakeConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/api/v2/series", intake.url());
    assert_eq!(
        post(&url, &[("dd-api-key", "wrong"), PB], series_body())
            .await
            .0,
        403
    );
    assert_eq!(
        post(&url, &[("dd-api-key", "right"), PB], series_body())
            .await
            .0,
        202
    );
}

#[tokio::test]
async fn profile_multipart() {
    let intake = Intake::start().await;
    let form = reqwest::multipart::Form::new()
        .part(
            "event",
            reqwest::multipart::Part::bytes(
                br#"{"attachments":["cpu.pprof"],"family":"rust","version":"4"}"#.to_vec(),
            )
            .file_name("event.json")
            .mime_str("application/json")
            .unwrap(),
        )
        .part(
            "cpu.pprof",
            reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("cpu.pprof"),
        );
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/profile", intake.url()))
        .header("DD-API-KEY", "k")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let p = intake.profiles();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].event["family"], "rust");
    let names: Vec<&str> = p[0].parts.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, vec!["event", "cpu.pprof"]);
    assert_eq!(p[0].parts[0].filename.as_deref(), Some("event.json"));
    assert_eq!(p[0].parts[1].len, 3);

    // Without an event part: refused.
    let form =
        reqwest::multipart::Form::new().part("cpu.pprof", reqwest::multipart::Part::bytes(vec![1]));
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/profile", intake.url()))
        .header("DD-API-KEY", "k")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn failures_status_reset_down() {
    let intake = Intake::start().await;
    let url = format!("{}/api/v2/series", intake.url());
    intake.set_failure(Failure::Status(500), Times::Next(2));
    assert_eq!(post(&url, &[KEY, PB], series_body()).await.0, 500);
    assert_eq!(post(&url, &[KEY, PB], series_body()).await.0, 500);
    assert_eq!(post(&url, &[KEY, PB], series_body()).await.0, 202);
    assert_eq!(intake.series().len(), 1);

    intake.set_failure(Failure::Reset, Times::Next(1));
    let client = reqwest::Client::new();
    let r = client
        .post(&url)
        .header("dd-api-key", "k")
        .header("content-type", "application/x-protobuf")
        .body(series_body())
        .send()
        .await;
    assert!(r.is_err(), "reset should fail the request, got {r:?}");
    assert_eq!(post(&url, &[KEY, PB], series_body()).await.0, 202);

    // Down: connections refused, even on a client with a pooled connection.
    let r = client
        .post(&url)
        .header("dd-api-key", "k")
        .header("content-type", "application/x-protobuf")
        .body(series_body())
        .send()
        .await;
    assert_eq!(r.unwrap().status().as_u16(), 202);
    intake.set_failure(Failure::Down, Times::For(Duration::from_millis(600)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = client
        .post(&url)
        .header("dd-api-key", "k")
        .header("content-type", "application/x-protobuf")
        .body(series_body())
        .send()
        .await;
    assert!(r.is_err(), "down should refuse, got {r:?}");
    assert!(tokio::net::TcpStream::connect(intake.addr()).await.is_err());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(post(&url, &[KEY, PB], series_body()).await.0, 202);
    assert_eq!(intake.series().len(), 4);

    // Stall answers 503 after the delay and keeps nothing.
    intake.set_failure(Failure::Stall(Duration::from_millis(200)), Times::Always);
    assert_eq!(post(&url, &[KEY, PB], series_body()).await.0, 503);
    intake.clear_failure();
    assert_eq!(post(&url, &[KEY, PB], series_body()).await.0, 202);
    assert!(
        intake
            .wait_for(|r| r.series.len() == 5, Duration::from_secs(1))
            .await
    );
    assert!(
        !intake
            .wait_for(|r| r.series.len() == 6, Duration::from_millis(100))
            .await
    );
}

#[tokio::test]
async fn failure_control_endpoint() {
    let intake = Intake::start().await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/_standin/failure", intake.url()))
        .json(&json!({"kind": "status", "status": 429, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let url = format!("{}/api/v2/series", intake.url());
    assert_eq!(post(&url, &[KEY, PB], series_body()).await.0, 429);
    assert_eq!(post(&url, &[KEY, PB], series_body()).await.0, 202);
    let r = client
        .post(format!("{}/_standin/failure", intake.url()))
        .json(&json!({"kind": "boom"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
