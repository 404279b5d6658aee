//! What a local agent recorded, as its status server serves it (`GET /api/series?metric=NAME`: `{"metric":…,
//! "series":[{"host","kind","stat","metric","points":[[unix_ts, value],…],"tags"}]}`), read from the running
//! agent or from a file holding one such answer or a JSON array of them.

use crate::alerting::{Points, Rule};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Where the recorded points come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A running agent's status server (`http://127.0.0.1:5002`).
    Url(String),
    /// A file recorded from that API.
    File(PathBuf),
}

impl Source {
    pub fn parse(s: &str) -> Source {
        if s.starts_with("http://") || s.starts_with("https://") {
            Source::Url(s.trim_end_matches('/').to_string())
        } else {
            Source::File(PathBuf::from(s))
        }
    }
}

/// One recorded context.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub metric: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub kind: String,
    /// A distribution's statistic (`p50`, `p95`, `p99`, `avg`, `max`, `count`); empty otherwise.
    #[serde(default)]
    pub stat: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Seconds each point of a rate or count covers, when the answer says (else the flush interval is
    /// taken from the recorded times).
    #[serde(default)]
    pub interval: i64,
    #[serde(default)]
    pub points: Vec<(i64, Option<f64>)>,
}

/// The entries of one `/api/series` answer, or of a JSON array of answers.
pub fn parse_answers(text: &str) -> Result<Vec<Entry>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("it is not JSON ({e})"))?;
    let answers = match doc {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut out = Vec::new();
    for (i, a) in answers.into_iter().enumerate() {
        let Some(series) = a.get("series") else {
            return Err(format!(
                "answer {} has no `series` list (expected what GET /api/series?metric=NAME returns)",
                i + 1
            ));
        };
        let top = a.get("metric").and_then(Value::as_str).unwrap_or_default();
        let entries: Vec<Entry> = serde_json::from_value(series.clone())
            .map_err(|e| format!("answer {}: unexpected series layout ({e})", i + 1))?;
        out.extend(entries.into_iter().map(|mut e| {
            if e.metric.is_empty() {
                e.metric = top.to_string();
            }
            e
        }));
    }
    Ok(out)
}

/// The points of a file (the whole file is read once).
pub fn read_file(path: &std::path::Path) -> Result<Vec<Entry>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_answers(&text).map_err(|e| format!("cannot use {}: {e}", path.display()))
}

/// The HTTP client for a running agent.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("kelpie-monitors/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// What a running agent at `base` recorded of `metric`.
pub async fn fetch(http: &reqwest::Client, base: &str, metric: &str) -> Result<Vec<Entry>, String> {
    let url = format!("{base}/api/series");
    let resp = http
        .get(&url)
        .query(&[("metric", metric)])
        .send()
        .await
        .map_err(|e| format!("cannot reach the agent at {base} ({}).", root_cause(&e)))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| format!("the agent at {base} broke off its answer ({e})."))?;
    if !status.is_success() {
        let short: String = body.chars().take(200).collect();
        return Err(format!(
            "{url}?metric={metric} answered HTTP {}: {short}",
            status.as_u16()
        ));
    }
    parse_answers(&body).map_err(|e| format!("{url}?metric={metric}: {e}"))
}

/// The innermost error of a request failure (`Connection refused (os error 111)`), not reqwest's chain.
fn root_cause(e: &reqwest::Error) -> String {
    let mut src: &dyn std::error::Error = e;
    while let Some(s) = src.source() {
        src = s;
    }
    src.to_string()
}

/// The statistic of a distribution that a space aggregator reads, or why none fits.
fn distribution_stat(space_aggr: &str, metric: &str) -> Result<&'static str, String> {
    match space_aggr {
        "avg" => Ok("avg"),
        "max" => Ok("max"),
        "p50" => Ok("p50"),
        "p95" => Ok("p95"),
        "p99" => Ok("p99"),
        other => Err(format!(
            "`{other}:` of the distribution {metric}: the agent records only its p50, p95, p99, avg, max and count"
        )),
    }
}

/// The agent's flush interval as the recorded times show it: the smallest gap between two of them.
fn flush_interval(entries: &[Entry]) -> Option<i64> {
    let times: std::collections::BTreeSet<i64> = entries
        .iter()
        .flat_map(|e| e.points.iter().map(|p| p.0))
        .collect();
    times
        .iter()
        .zip(times.iter().skip(1))
        .map(|(a, b)| b - a)
        .min()
}

/// The series `rule` reads among `entries`, as points sorted by time; a host becomes a `host:` tag as in
/// Datadog. For a distribution, the statistic matching the space aggregator. With `.as_count()`, a rate
/// (per second) becomes a count per interval, and with `.as_rate()` a recorded count becomes a rate per
/// second, as Datadog's modifiers do (gauges and distributions are left as they are).
pub fn points_for(rule: &Rule, entries: &[Entry]) -> Result<Vec<Points>, String> {
    let metric = &rule.simple.metric;
    let inferred = flush_interval(entries).unwrap_or(1).max(1);
    let mine: Vec<&Entry> = entries.iter().filter(|e| &e.metric == metric).collect();
    let stat = if mine.iter().any(|e| !e.stat.is_empty()) {
        distribution_stat(&rule.simple.space_aggr, metric)?
    } else if crate::query::percentile_of(&rule.simple.space_aggr).is_some() {
        match mine.first() {
            Some(e) => {
                return Err(format!(
                    "`{}:` reads a distribution's percentile, but {metric} was recorded as a {}",
                    rule.simple.space_aggr,
                    if e.kind.is_empty() { "gauge" } else { &e.kind }
                ))
            }
            None => "",
        }
    } else {
        ""
    };
    let mut out: Vec<Points> = mine
        .into_iter()
        .filter(|e| e.stat == stat)
        .map(|e| {
            let interval = if e.interval > 0 { e.interval } else { inferred } as f64;
            let scale = match e.kind.as_str() {
                "rate" if rule.as_count => interval,
                "count" if rule.as_rate => 1.0 / interval,
                _ => 1.0,
            };
            let mut tags = e.tags.clone();
            if !e.host.is_empty() && !tags.iter().any(|t| t.starts_with("host:")) {
                tags.push(format!("host:{}", e.host));
            }
            let mut points: Vec<(i64, f64)> = e
                .points
                .iter()
                .filter_map(|(t, v)| v.filter(|v| v.is_finite()).map(|v| (*t, v * scale)))
                .collect();
            points.sort_by_key(|p| p.0);
            Points {
                metric: metric.clone(),
                tags,
                points,
            }
        })
        .filter(|p| rule.reads(p))
        .collect();
    out.sort_by(|a, b| a.tags.cmp(&b.tags));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(query: &str) -> Rule {
        Rule::of(&crate::model::Monitor {
            mtype: "query alert".into(),
            query: query.into(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn reads_one_answer_or_an_array_of_them() {
        let one = r#"{"metric":"a","series":[{"host":"h","kind":"gauge","metric":"a","points":[[10,1.5]],"tags":["x:y"]}]}"#;
        let e = parse_answers(one).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].points, vec![(10, Some(1.5))]);
        let many = format!(r#"[{one}, {{"metric":"b","series":[{{"points":[[20,null]]}}]}}]"#);
        let e = parse_answers(&many).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].metric, "b");
        assert!(parse_answers("{}").unwrap_err().contains("no `series`"));
        assert!(parse_answers("nope").unwrap_err().contains("not JSON"));
        assert_eq!(
            Source::parse("http://127.0.0.1:5002/"),
            Source::Url("http://127.0.0.1:5002".into())
        );
    }

    #[test]
    fn a_distribution_is_read_through_the_statistic_of_the_space_aggregator() {
        let text = r#"{"metric":"lat","series":[
            {"host":"h","kind":"distribution","stat":"avg","points":[[1,2.0]],"tags":[]},
            {"host":"h","kind":"distribution","stat":"max","points":[[1,9.0]],"tags":[]}]}"#;
        let entries = parse_answers(text).unwrap();
        let p = points_for(&rule("avg(last_5m):max:lat{host:h} > 1"), &entries).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].points, vec![(1, 9.0)]);
        assert_eq!(p[0].tags, vec!["host:h".to_string()]);
        let err = points_for(&rule("avg(last_5m):sum:lat{*} > 1"), &entries).unwrap_err();
        assert!(err.contains("records only its p50"), "{err}");
    }

    #[test]
    fn as_count_reads_a_rate_back_as_counts_per_flush_interval() {
        let text = r#"{"metric":"req","series":[
            {"host":"h","kind":"rate","points":[[10,0.5],[20,2.0]],"tags":[]}]}"#;
        let entries = parse_answers(text).unwrap();
        let p = points_for(&rule("sum(last_5m):sum:req{*}.as_count() > 1"), &entries).unwrap();
        assert_eq!(p[0].points, vec![(10, 5.0), (20, 20.0)]);
        let p = points_for(&rule("sum(last_5m):sum:req{*} > 1"), &entries).unwrap();
        assert_eq!(p[0].points, vec![(10, 0.5), (20, 2.0)]);
    }
}
