//! The intake endpoints: series (protobuf or JSON), sketches, events, service checks and profiles,
//! checked as Datadog checks them, normalized and kept for tests.

use super::decode::{decode_body, header, media_type, parse_json, Refusal};
use super::proto;
use super::routes::answer;
use super::{
    ReceivedDogsketch, ReceivedPart, ReceivedProfile, ReceivedSeries, ReceivedSketch, Shared,
    MAX_KEPT, PROFILE_LIMITS, SERIES_LIMITS, SKETCH_LIMITS,
};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use prost::Message;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct JsonSeriesBody {
    series: Vec<JsonSeries>,
}

#[derive(Deserialize)]
struct JsonSeries {
    metric: String,
    #[serde(default, rename = "type")]
    kind: i32,
    points: Vec<JsonPoint>,
    #[serde(default)]
    resources: Vec<JsonResource>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    interval: i64,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    source_type_name: String,
}

#[derive(Deserialize)]
struct JsonPoint {
    timestamp: i64,
    value: f64,
}

#[derive(Deserialize)]
struct JsonResource {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

fn host_of(resources: &[(String, String)]) -> Option<String> {
    resources
        .iter()
        .find(|(t, _)| t == "host")
        .map(|(_, n)| n.clone())
}

fn check_series(s: &ReceivedSeries) -> Result<(), Refusal> {
    if s.name.is_empty() {
        return Err((400, "series without a metric name".into()));
    }
    if !(0..=3).contains(&s.kind) {
        return Err((400, format!("series {}: invalid type {}", s.name, s.kind)));
    }
    Ok(())
}

pub(super) fn ingest_series(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Refusal> {
    let raw = decode_body(headers, body, SERIES_LIMITS)?;
    let mut got = Vec::new();
    match media_type(headers).as_str() {
        "application/x-protobuf" => {
            let msg = proto::MetricPayload::decode(&raw[..])
                .map_err(|e| (400, format!("invalid MetricPayload protobuf: {e}")))?;
            for s in msg.series {
                let resources: Vec<(String, String)> = s
                    .resources
                    .into_iter()
                    .map(|r| (r.r#type, r.name))
                    .collect();
                got.push(ReceivedSeries {
                    host: host_of(&resources),
                    name: s.metric,
                    tags: s.tags,
                    kind: s.r#type,
                    interval: s.interval,
                    points: s.points.iter().map(|p| (p.timestamp, p.value)).collect(),
                    unit: s.unit,
                    source_type_name: s.source_type_name,
                    resources,
                    format: "protobuf",
                });
            }
        }
        "application/json" => {
            let msg: JsonSeriesBody = serde_json::from_slice(&raw)
                .map_err(|e| (400, format!("invalid v2 series JSON: {e}")))?;
            for s in msg.series {
                let resources: Vec<(String, String)> =
                    s.resources.into_iter().map(|r| (r.kind, r.name)).collect();
                got.push(ReceivedSeries {
                    host: host_of(&resources),
                    name: s.metric,
                    tags: s.tags,
                    kind: s.kind,
                    interval: s.interval,
                    points: s.points.iter().map(|p| (p.timestamp, p.value)).collect(),
                    unit: s.unit,
                    source_type_name: s.source_type_name,
                    resources,
                    format: "json",
                });
            }
        }
        other => {
            return Err((
                415,
                format!("Unsupported Content-Type {other:?} for series"),
            ))
        }
    }
    for s in &got {
        check_series(s)?;
    }
    shared.record(|r| keep(&mut r.series, got, &mut r.not_kept));
    Ok(answer(202, json!({ "errors": [] })))
}

fn keep<T>(into: &mut Vec<T>, items: Vec<T>, not_kept: &mut u64) {
    let room = MAX_KEPT.saturating_sub(into.len());
    let n = items.len();
    into.extend(items.into_iter().take(room));
    *not_kept += n.saturating_sub(room) as u64;
}

pub(super) fn ingest_sketches(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Refusal> {
    let raw = decode_body(headers, body, SKETCH_LIMITS)?;
    if media_type(headers) != "application/x-protobuf" {
        return Err((415, "Sketches must be application/x-protobuf".into()));
    }
    let msg = proto::SketchPayload::decode(&raw[..])
        .map_err(|e| (400, format!("invalid SketchPayload protobuf: {e}")))?;
    let mut got = Vec::with_capacity(msg.sketches.len());
    for s in msg.sketches {
        if s.metric.is_empty() {
            return Err((400, "sketch without a metric name".into()));
        }
        for d in &s.dogsketches {
            if d.k.len() != d.n.len() {
                return Err((
                    400,
                    format!(
                        "sketch {}: {} keys but {} counts",
                        s.metric,
                        d.k.len(),
                        d.n.len()
                    ),
                ));
            }
        }
        got.push(ReceivedSketch {
            name: s.metric,
            host: s.host,
            tags: s.tags,
            legacy_distributions: s.distributions.len(),
            points: s
                .dogsketches
                .into_iter()
                .map(|d| ReceivedDogsketch {
                    ts: d.ts,
                    cnt: d.cnt,
                    min: d.min,
                    max: d.max,
                    avg: d.avg,
                    sum: d.sum,
                    k: d.k,
                    n: d.n,
                })
                .collect(),
        });
    }
    shared.record(|r| keep(&mut r.sketches, got, &mut r.not_kept));
    Ok(answer(202, json!({})))
}

pub(super) fn ingest_event(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Refusal> {
    let ev = parse_json(headers, body, "event")?;
    if ev.get("title").and_then(Value::as_str).is_none() {
        return Err((400, "event: title is required".into()));
    }
    if ev.get("text").and_then(Value::as_str).is_none() {
        return Err((400, "event: text is required".into()));
    }
    // Datadog documents title ≤ 100 and text ≤ 4000 characters but displays longer ones truncated rather than
    // refusing them; the stand-in keeps what was sent, so tests can check the agent respects the limits.
    if let Some(t) = ev.get("alert_type") {
        const ALERT_TYPES: &[&str] = &[
            "error",
            "warning",
            "info",
            "success",
            "user_update",
            "recommendation",
            "snapshot",
        ];
        if !t.as_str().is_some_and(|t| ALERT_TYPES.contains(&t)) {
            return Err((400, format!("event: invalid alert_type {t}")));
        }
    }
    if let Some(p) = ev.get("priority") {
        if !p.as_str().is_some_and(|p| p == "normal" || p == "low") {
            return Err((400, format!("event: invalid priority {p} (normal or low)")));
        }
    }
    if let Some(d) = ev.get("date_happened") {
        if !d.is_i64() {
            return Err((400, "event: date_happened must be an integer".into()));
        }
    }
    if let Some(tags) = ev.get("tags") {
        if !tags
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err((400, "event: tags must be an array of strings".into()));
        }
    }
    let echo = ev.clone();
    shared.record(|r| keep(&mut r.events, vec![ev], &mut r.not_kept));
    Ok(answer(202, json!({ "status": "ok", "event": echo })))
}

pub(super) fn ingest_checks(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Refusal> {
    let v = parse_json(headers, body, "check_run")?;
    let Value::Array(checks) = v else {
        return Err((400, "check_run: the body must be a JSON array".into()));
    };
    for c in &checks {
        if c.get("check")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err((400, "check_run: check is required".into()));
        }
        if c.get("host_name").and_then(Value::as_str).is_none() {
            return Err((400, "check_run: host_name is required".into()));
        }
        if c.get("status")
            .and_then(Value::as_u64)
            .is_none_or(|s| s > 3)
        {
            return Err((400, "check_run: status must be 0, 1, 2 or 3".into()));
        }
    }
    shared.record(|r| keep(&mut r.service_checks, checks, &mut r.not_kept));
    Ok(answer(202, json!({ "status": "ok" })))
}

pub(super) async fn ingest_profile(
    shared: &Shared,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let raw = Bytes::from(decode_body(headers, &body, PROFILE_LIMITS)?);
    let ct = header(headers, "content-type");
    let boundary = multer::parse_boundary(ct)
        .map_err(|e| (400, format!("profile: not multipart/form-data: {e}")))?;
    let stream = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(raw) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    let mut event = None;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err((400, format!("profile: invalid multipart body: {e}"))),
        };
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|m| m.to_string());
        let data = field
            .bytes()
            .await
            .map_err(|e| (400, format!("profile: invalid multipart part: {e}")))?;
        if name == "event" {
            let v: Value = serde_json::from_slice(&data)
                .map_err(|e| (400, format!("profile: event part is not JSON: {e}")))?;
            if !v.is_object() {
                return Err((400, "profile: event part must be a JSON object".into()));
            }
            event = Some(v);
        }
        parts.push(ReceivedPart {
            name,
            filename,
            content_type,
            len: data.len(),
        });
    }
    let event = event.ok_or((
        400,
        "profile: an `event` part (event.json) is required".to_string(),
    ))?;
    shared.record(|r| {
        keep(
            &mut r.profiles,
            vec![ReceivedProfile { parts, event }],
            &mut r.not_kept,
        )
    });
    Ok(answer(202, json!({})))
}
