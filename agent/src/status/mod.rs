//! What the status server (`KELPIE_STATUS_ADDR`, default 127.0.0.1:5002) shows: the state it reads
//! ([`StatusState`]) and the status document of SPEC.md §7 built from it, whose numbers come from the
//! telemetry tables ([`stats::STATS`], [`DropReason`](crate::telemetry::DropReason)). The routes are in
//! [`server`], the text of `kelpie status` in [`render`](mod@render).

mod render;
mod server;
#[cfg(test)]
mod tests;

pub use render::{format_time, render, render_text};
pub use server::{bind, router};

use crate::clock::unix_now;
use crate::history::History;
use crate::recent::Recent;
use crate::telemetry::{stats, DropSection, Telemetry};
use kelpie_container::tags::TagCardinality;
use kelpie_container::OriginResolver;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One collector's state as shown in the status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CollectorStatus {
    /// `ok`, `off` or `error`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub error: Option<String>,
}

impl CollectorStatus {
    pub fn new(status: &str) -> Self {
        CollectorStatus {
            status: status.to_string(),
            containers: None,
            detail: None,
            error: None,
        }
    }
}

/// Which origin detection is configured.
#[derive(Clone, Copy, Debug)]
pub struct OriginSettings {
    /// Over the Unix sockets (`dogstatsd_origin_detection`).
    pub uds: bool,
    /// From the `|c:` field (`dogstatsd_origin_detection_client`).
    pub client_field: bool,
    /// `dogstatsd_tag_cardinality`.
    pub cardinality: TagCardinality,
}

/// What the status server reads. Shared with the pipeline.
pub struct StatusState {
    pub version: &'static str,
    /// Serve `/debug/pprof/profile` (`KELPIE_PPROF`).
    pub pprof: bool,
    pub hostname: String,
    pub mode: &'static str,
    pub site: String,
    /// The intake base URL in use (`dd_url`, or `https://api.<site>`); empty in local mode.
    pub intake_url: String,
    pub started: Instant,
    pub flush_interval: Duration,
    pub telemetry: Arc<Telemetry>,
    pub history: Arc<Mutex<History>>,
    /// The last events and service checks (filled by the flusher).
    pub recent: Mutex<Recent>,
    /// The metric names with the most contexts at the last flush (`/api/top`).
    pub top: Mutex<crate::top::TopView>,
    pub collectors: Mutex<BTreeMap<&'static str, CollectorStatus>>,
    pub origin_settings: OriginSettings,
    /// The container tag table, once Docker answers.
    pub origin: Arc<RwLock<Option<OriginResolver>>>,
}

impl StatusState {
    /// The state of an agent starting now with `cfg`: the host collector on, the others not known yet.
    pub fn new(
        cfg: &crate::config::Config,
        version: &'static str,
        telemetry: Arc<Telemetry>,
        history: Arc<Mutex<History>>,
        origin: Arc<RwLock<Option<OriginResolver>>>,
    ) -> StatusState {
        let state = StatusState {
            version,
            pprof: cfg.pprof,
            hostname: cfg.hostname.clone(),
            mode: cfg.mode(),
            site: cfg.site.clone(),
            intake_url: if cfg.api_key.is_some() {
                cfg.dd_url.clone()
            } else {
                String::new()
            },
            started: Instant::now(),
            flush_interval: cfg.flush_interval,
            telemetry,
            history,
            recent: Mutex::new(Default::default()),
            top: Mutex::new(Default::default()),
            collectors: Mutex::new(Default::default()),
            origin_settings: OriginSettings {
                uds: cfg.dogstatsd_origin_detection,
                client_field: cfg.dogstatsd_origin_detection_client,
                cardinality: cfg.dogstatsd_tag_cardinality,
            },
            origin,
        };
        state
            .collectors
            .lock()
            .insert("host", CollectorStatus::new("ok"));
        state
    }

    /// Whether the pipeline is alive: a flush happened within three flush intervals (or the agent is younger).
    pub fn healthy(&self) -> bool {
        let grace = (self.flush_interval.as_secs() as i64 * 3).max(5);
        if self.started.elapsed().as_secs() as i64 <= grace {
            return true;
        }
        let last = self.telemetry.flush.last_flush_unix.get();
        last > 0 && unix_now() - last <= grace
    }

    /// The status document of SPEC.md §7: every stat of [`stats::STATS`] at its path, the drops of each
    /// section, and what is not a number.
    pub fn to_json(&self) -> Value {
        let t = &self.telemetry;
        let d = &t.dogstatsd;
        let f = &t.forwarder;
        let history = self.history.lock();
        let recent = self.recent.lock();
        let mut doc = json!({
            "version": self.version,
            "hostname": self.hostname,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "mode": self.mode,
            "site": self.site,
            "dd_url": (!self.intake_url.is_empty()).then_some(&self.intake_url),
            "healthy": self.healthy(),
            "dogstatsd": {
                "context_limit_reason": if d.context_limit_lowered.get() != 0 { "rss_near_memory_limit" } else { "memory_limit" },
                "dropped": d.dropped.shown(DropSection::Dogstatsd),
            },
            "forwarder": {
                "transactions": {
                    "dropped": f.dropped.shown(DropSection::Forwarder),
                },
                "last_error": f.last_error.lock().clone(),
                "delivering": f.not_delivering_since.get() == 0,
                "not_delivering_since": Some(f.not_delivering_since.get()).filter(|&t| t > 0),
            },
            "encode": {
                "dropped": t.encode.dropped.shown(DropSection::Encode),
            },
            "history": {
                "contexts": history.contexts(),
                "bytes": history.bytes(),
                "evicted": history.evicted(),
            },
            "collectors": self.collectors_json(),
            "origin_detection": self.origin_json(),
            "recent_events": recent.events(5),
            "recent_service_checks": recent.checks(5),
        });
        for s in stats::STATS {
            stats::put(&mut doc, s.path, (s.read)(t).into());
        }
        doc
    }

    /// The collectors, with every field of SPEC §7 present whether or not a collector runs: `host`, `docker`
    /// (with `containers`, 0 when off or unavailable, and `error`) and `ecs`.
    fn collectors_json(&self) -> Value {
        let mut all = self.collectors.lock().clone();
        for name in ["host", "docker", "ecs"] {
            all.entry(name)
                .or_insert_with(|| CollectorStatus::new("off"));
        }
        if let Some(docker) = all.get_mut("docker") {
            docker.containers.get_or_insert(0);
        }
        serde_json::to_value(all).unwrap_or_default()
    }

    /// Origin detection: what is on, and how lookups fared (a container's metrics without its tags show up
    /// as unresolved lookups).
    fn origin_json(&self) -> Value {
        let OriginSettings {
            uds,
            client_field,
            cardinality,
        } = self.origin_settings;
        let resolver = self.origin.read();
        let (resolved, unresolved) = resolver.as_ref().map_or((0, 0), OriginResolver::stats);
        json!({
            "uds": uds,
            "client_field": client_field,
            "tag_cardinality": cardinality.as_str(),
            "containers": resolver.as_ref().map_or(0, OriginResolver::len),
            "resolved": resolved,
            "unresolved": unresolved,
        })
    }
}
