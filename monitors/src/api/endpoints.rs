//! The typed Monitors API v1 endpoints (list, search, get, create, update, delete, validate, can_delete):
//! which path, query and body each sends and how its answer is read. Its own file because these are what
//! callers use, while [`super`] holds how a request is sent (rate limits, retries, concurrency, errors).

use super::{backoff, error_text, ApiError, Client, MAX_ATTEMPTS, MAX_PAGES, PAGE_SIZE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

impl Client {
    /// Lists monitors, following pages (`page_size` 1000) until a short page.
    pub async fn list(
        &self,
        monitor_tags: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let mut q = vec![
                ("page", page.to_string()),
                ("page_size", PAGE_SIZE.to_string()),
            ];
            if let Some(t) = monitor_tags.filter(|t| !t.is_empty()) {
                q.push(("monitor_tags", t.to_string()));
            }
            if let Some(n) = name.filter(|n| !n.is_empty()) {
                q.push(("name", n.to_string()));
            }
            let (_, body) = self
                .send("list", Method::GET, "/api/v1/monitor", &q, None)
                .await?;
            let items = match body {
                Value::Array(a) => a,
                other => {
                    return Err(ApiError::Http {
                        method: "GET".into(),
                        path: "/api/v1/monitor".into(),
                        status: 200,
                        message: format!(
                            "expected a JSON array, got {}",
                            other.to_string().chars().take(80).collect::<String>()
                        ),
                    })
                }
            };
            let n = items.len();
            out.extend(items);
            if n < PAGE_SIZE {
                break;
            }
        }
        Ok(out)
    }

    /// How many monitors `GET /api/v1/monitor/search?query=…` finds (one request: `metadata.total_count`).
    pub async fn search_count(&self, query: &str) -> Result<usize, ApiError> {
        let q = vec![
            ("query", query.to_string()),
            ("page", "0".to_string()),
            ("per_page", "1".to_string()),
        ];
        let (_, body) = self
            .send("search", Method::GET, "/api/v1/monitor/search", &q, None)
            .await?;
        body.pointer("/metadata/total_count")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::Http {
                method: "GET".into(),
                path: "/api/v1/monitor/search".into(),
                status: 200,
                message: "no metadata.total_count in the answer".into(),
            })
    }

    pub async fn get(&self, id: i64) -> Result<Value, ApiError> {
        Ok(self
            .send(
                "get",
                Method::GET,
                &format!("/api/v1/monitor/{id}"),
                &[],
                None,
            )
            .await?
            .1)
    }

    pub async fn create(&self, body: &Value) -> Result<Value, ApiError> {
        Ok(self
            .send("create", Method::POST, "/api/v1/monitor", &[], Some(body))
            .await?
            .1)
    }

    /// Creates a monitor that carries the tags `search_tags` (comma-separated, as `monitor_tags`) and that no
    /// other monitor carries. When the answer is lost (a 5xx or a network error: Datadog may have applied it),
    /// the monitor is looked for by those tags before the create is sent again, so it is never duplicated.
    pub async fn create_tagged(&self, body: &Value, search_tags: &str) -> Result<Value, ApiError> {
        let mut attempts = 0u32;
        loop {
            let err = match self
                .send_checked(
                    "create",
                    Method::POST,
                    "/api/v1/monitor",
                    &[],
                    Some(body),
                    false,
                )
                .await
            {
                Ok((_, m)) => return Ok(m),
                Err(e) => e,
            };
            let uncertain = matches!(
                err,
                ApiError::Network { .. }
                    | ApiError::Http {
                        status: 500..=599,
                        ..
                    }
            );
            if !uncertain || attempts + 1 >= MAX_ATTEMPTS {
                return Err(err);
            }
            attempts += 1;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %err, search_tags, "create answer lost; looking for the monitor before creating again");
            tokio::time::sleep(backoff(attempts)).await;
            if let Some(found) = self
                .list(Some(search_tags), None)
                .await?
                .into_iter()
                .min_by_key(|m| m.get("id").and_then(Value::as_i64).unwrap_or(i64::MAX))
            {
                self.stats
                    .found_after_lost_answer
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(found);
            }
        }
    }

    pub async fn update(&self, id: i64, body: &Value) -> Result<Value, ApiError> {
        Ok(self
            .send(
                "update",
                Method::PUT,
                &format!("/api/v1/monitor/{id}"),
                &[],
                Some(body),
            )
            .await?
            .1)
    }

    pub async fn delete(&self, id: i64, force: bool) -> Result<(), ApiError> {
        let q: Vec<(&str, String)> = if force {
            vec![("force", "true".into())]
        } else {
            vec![]
        };
        self.send(
            "delete",
            Method::DELETE,
            &format!("/api/v1/monitor/{id}"),
            &q,
            None,
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/monitor/validate`: Ok when the API accepts the monitor, else its error text.
    pub async fn validate(&self, body: &Value) -> Result<Result<(), String>, ApiError> {
        match self
            .send(
                "validate",
                Method::POST,
                "/api/v1/monitor/validate",
                &[],
                Some(body),
            )
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(ApiError::Http {
                status: 400,
                message,
                ..
            }) => Ok(Err(message)),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v1/monitor/can_delete`: the ids that can be deleted and, for the others, why not.
    pub async fn can_delete(
        &self,
        ids: &[i64],
    ) -> Result<(Vec<i64>, BTreeMap<i64, String>), ApiError> {
        let mut ok = Vec::new();
        let mut errors = BTreeMap::new();
        for chunk in ids.chunks(100) {
            let list = chunk
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let q = vec![("monitor_ids", list)];
            let (status, body) = self
                .send_any(
                    "can_delete",
                    Method::GET,
                    "/api/v1/monitor/can_delete",
                    &q,
                    None,
                    true,
                )
                .await?;
            if !(status.is_success() || status == StatusCode::CONFLICT) {
                return Err(self.http_error("GET", "/api/v1/monitor/can_delete", status, &body));
            }
            if let Some(a) = body.pointer("/data/ok").and_then(Value::as_array) {
                ok.extend(a.iter().filter_map(Value::as_i64));
            }
            if let Some(o) = body.get("errors").and_then(Value::as_object) {
                for (k, v) in o {
                    if let Ok(id) = k.parse::<i64>() {
                        errors.insert(id, error_text(&serde_json::json!({"errors": v})));
                    }
                }
            }
        }
        Ok((ok, errors))
    }
}
