//! The last events and service checks the agent saw (DogStatsD `_e` / `_sc`, Docker and ECS deploy events),
//! kept in two bounded rings so that an agent in local mode shows them (`GET /api/events`,
//! `GET /api/service_checks`, the status page, `kelpie status`), and one forwarding shows what it sent.
//!
//! Memory is bounded by the ring sizes and by cutting long texts and tag lists: at most
//! `CAPACITY × (TEXT_MAX + TAGS_MAX × TAG_MAX)` bytes per ring.

use crate::model::{Event, ServiceCheck};
use std::collections::VecDeque;

/// Entries kept per ring.
pub const CAPACITY: usize = 200;
/// Longest event text or service check message kept (bytes, cut on a character boundary).
const TEXT_MAX: usize = 2048;
/// Longest title or check name kept.
const TITLE_MAX: usize = 200;
/// Tags kept per entry, and the longest tag.
const TAGS_MAX: usize = 32;
const TAG_MAX: usize = 200;

/// One event as shown.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventView {
    /// Unix seconds (`d:`, else when the agent received it).
    pub timestamp: i64,
    pub title: String,
    pub text: String,
    /// `error`, `warning`, `info` or `success`.
    pub alert_type: String,
    pub priority: String,
    pub source_type_name: Option<String>,
    pub aggregation_key: Option<String>,
    pub host: Option<String>,
    pub tags: Vec<String>,
    /// Carries `event_type:deploy` (ECS deploy events): shown first on the page.
    pub deploy: bool,
}

/// One service check as shown.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckView {
    pub timestamp: i64,
    pub check: String,
    /// 0 ok, 1 warning, 2 critical, 3 unknown.
    pub status: u8,
    /// `ok`, `warning`, `critical` or `unknown`.
    pub status_text: &'static str,
    pub message: String,
    pub host: Option<String>,
    pub tags: Vec<String>,
}

/// The name of a service check status.
pub fn check_status_text(status: u8) -> &'static str {
    match status {
        0 => "ok",
        1 => "warning",
        2 => "critical",
        _ => "unknown",
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn cut_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .take(TAGS_MAX)
        .map(|t| cut(t, TAG_MAX))
        .collect()
}

/// The two rings, newest last.
#[derive(Debug, Default)]
pub struct Recent {
    events: VecDeque<EventView>,
    checks: VecDeque<CheckView>,
    events_seen: u64,
    checks_seen: u64,
}

impl Recent {
    /// Keeps `events` and `checks` (received at `now` unless they carry their own time), dropping the oldest
    /// beyond [`CAPACITY`].
    pub fn record(&mut self, events: &[Event], checks: &[ServiceCheck], now: i64) {
        for e in events {
            self.events_seen += 1;
            if self.events.len() == CAPACITY {
                self.events.pop_front();
            }
            self.events.push_back(EventView {
                timestamp: e.timestamp.unwrap_or(now),
                title: cut(&e.title, TITLE_MAX),
                text: cut(&e.text, TEXT_MAX),
                alert_type: e.alert_type.clone().unwrap_or_else(|| "info".into()),
                priority: e.priority.clone().unwrap_or_else(|| "normal".into()),
                source_type_name: e.source_type_name.as_deref().map(|s| cut(s, TAG_MAX)),
                aggregation_key: e.aggregation_key.as_deref().map(|s| cut(s, TAG_MAX)),
                host: e.hostname.as_deref().map(|s| cut(s, TAG_MAX)),
                tags: cut_tags(&e.tags),
                deploy: e.tags.iter().any(|t| t == "event_type:deploy"),
            });
        }
        for c in checks {
            self.checks_seen += 1;
            if self.checks.len() == CAPACITY {
                self.checks.pop_front();
            }
            self.checks.push_back(CheckView {
                timestamp: c.timestamp.unwrap_or(now),
                check: cut(&c.check, TITLE_MAX),
                status: c.status,
                status_text: check_status_text(c.status),
                message: c
                    .message
                    .as_deref()
                    .map_or(String::new(), |m| cut(m, TEXT_MAX)),
                host: c.hostname.as_deref().map(|s| cut(s, TAG_MAX)),
                tags: cut_tags(&c.tags),
            });
        }
    }

    /// Events, newest first, at most `limit`.
    pub fn events(&self, limit: usize) -> Vec<EventView> {
        self.events.iter().rev().take(limit).cloned().collect()
    }

    /// Service checks, newest first, at most `limit`.
    pub fn checks(&self, limit: usize) -> Vec<CheckView> {
        self.checks.iter().rev().take(limit).cloned().collect()
    }

    /// Events and service checks recorded since start (kept or not).
    pub fn seen(&self) -> (u64, u64) {
        (self.events_seen, self.checks_seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(title: &str, tags: &[&str]) -> Event {
        Event {
            title: title.into(),
            text: "x".repeat(10_000),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Event::default()
        }
    }

    #[test]
    fn rings_are_bounded_newest_first_and_cut_long_text() {
        let mut r = Recent::default();
        let events: Vec<Event> = (0..CAPACITY + 5)
            .map(|i| event(&format!("e{i}"), &["event_type:deploy"]))
            .collect();
        r.record(&events, &[], 100);
        let got = r.events(usize::MAX);
        assert_eq!(got.len(), CAPACITY);
        assert_eq!(got[0].title, format!("e{}", CAPACITY + 4));
        assert_eq!(got.last().unwrap().title, "e5");
        assert!(got[0].deploy);
        assert_eq!(got[0].timestamp, 100);
        assert_eq!(got[0].alert_type, "info");
        assert!(got[0].text.len() <= TEXT_MAX + 3, "{}", got[0].text.len());
        let check = ServiceCheck {
            check: "app.db".into(),
            status: 2,
            timestamp: Some(7),
            message: Some("down".into()),
            ..ServiceCheck::default()
        };
        r.record(&[], &[check], 100);
        let c = &r.checks(10)[0];
        assert_eq!(
            (c.status_text, c.timestamp, c.message.as_str()),
            ("critical", 7, "down")
        );
        assert_eq!(r.seen(), (CAPACITY as u64 + 5, 1));
    }
}
