//! Events (`_e{…}`) and service checks (`_sc|…`): rare lines, parsed into owned strings off the metric hot
//! path. Their `host:` and `dd.internal.*` tags are taken out as the Agent's enrichment does for metrics.

use super::{for_each_field, ParseError};
use crate::dogstatsd::cardinality;
use crate::dogstatsd::number::{parse_i64, parse_len};
use crate::model::{Event, ServiceCheck};
use kelpie_container::tags::TagCardinality;
use memchr::memchr;

/// What an event's or service check's tags said about it besides tags (see [`take_tag_metadata`]).
#[derive(Clone, Debug, Default, PartialEq)]
struct TagMetadata {
    /// The last `host:` tag's value (empty: no host).
    host: Option<String>,
    /// The last `dd.internal.card:` tag's level, when known.
    cardinality: Option<TagCardinality>,
}

/// Removes the tags the Datadog Agent's enrichment (`extractTagsMetadata`) takes out of an event's or service
/// check's tags, as the aggregator does for metrics: `host:` (its value is returned), `dd.internal.entity_id:`,
/// `dd.internal.card:` (its level is returned) and `dd.internal.jmx_check_name:`.
fn take_tag_metadata(tags: &mut Vec<String>) -> TagMetadata {
    let mut meta = TagMetadata::default();
    tags.retain(|t| {
        if let Some(h) = t.strip_prefix("host:") {
            meta.host = Some(h.to_owned());
        } else if let Some(card) = t.strip_prefix(cardinality::TAG_PREFIX) {
            meta.cardinality = cardinality::level(card).or(meta.cardinality);
        } else if !cardinality::is_internal_tag(t) {
            return true;
        }
        false
    });
    meta
}

fn split_tags(raw: &str) -> Vec<String> {
    raw.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

fn unescape_newlines(v: &str) -> String {
    v.replace("\\n", "\n")
}

#[cold]
#[inline(never)]
/// An event from the line's raw bytes: its title and text lengths are byte counts of what was sent, so bytes
/// that are not UTF-8 are replaced (U+FFFD) only once the title, text and fields are cut out.
pub(super) fn parse_event(b: &[u8]) -> Result<Event, ParseError> {
    // `_e{` is checked by the caller.
    let close = memchr(b'}', b).ok_or(ParseError::InvalidEventHeader)?;
    let lengths = &b[3..close];
    let comma = memchr(b',', lengths).ok_or(ParseError::InvalidEventHeader)?;
    let title_len = parse_len(&lengths[..comma]).ok_or(ParseError::InvalidEventHeader)?;
    let text_len = parse_len(&lengths[comma + 1..]).ok_or(ParseError::InvalidEventHeader)?;
    if b.get(close + 1) != Some(&b':') {
        return Err(ParseError::InvalidEventHeader);
    }
    if title_len == 0 {
        return Err(ParseError::EmptyEventTitle);
    }
    let title_start = close + 2;
    let title_end = title_start
        .checked_add(title_len)
        .ok_or(ParseError::EventTooShort)?;
    let text_start = title_end + 1;
    let text_end = text_start
        .checked_add(text_len)
        .ok_or(ParseError::EventTooShort)?;
    if text_end > b.len() {
        return Err(ParseError::EventTooShort);
    }
    if b[title_end] != b'|' || (text_end < b.len() && b[text_end] != b'|') {
        return Err(ParseError::EventLengthMismatch);
    }
    let title = String::from_utf8_lossy(&b[title_start..title_end]);
    let text = String::from_utf8_lossy(&b[text_start..text_end]);
    let mut event = Event {
        title: unescape_newlines(&title),
        text: unescape_newlines(&text),
        ..Event::default()
    };
    if text_end < b.len() {
        let rest = String::from_utf8_lossy(&b[text_end + 1..]);
        let s: &str = &rest;
        for_each_field(s.as_bytes(), 0, |start, end| {
            let field = &s[start..end];
            if let Some(v) = field.strip_prefix('#') {
                event.tags = split_tags(v);
            } else if let Some(v) = field.strip_prefix("d:") {
                match parse_i64(v.as_bytes()) {
                    Some(ts) => event.timestamp = Some(ts),
                    None => tracing::debug!(field, "ignored an invalid event timestamp"),
                }
            } else if let Some(v) = field.strip_prefix("h:") {
                event.hostname = non_empty(v);
            } else if let Some(v) = field.strip_prefix("k:") {
                event.aggregation_key = non_empty(v);
            } else if let Some(v) = field.strip_prefix("p:") {
                match v {
                    "normal" | "low" => event.priority = Some(v.to_owned()),
                    _ => tracing::debug!(field, "ignored an invalid event priority"),
                }
            } else if let Some(v) = field.strip_prefix("s:") {
                event.source_type_name = non_empty(v);
            } else if let Some(v) = field.strip_prefix("t:") {
                match v {
                    "error" | "warning" | "info" | "success" => {
                        event.alert_type = Some(v.to_owned())
                    }
                    _ => tracing::debug!(field, "ignored an invalid event alert type"),
                }
            } else if let Some(v) = field.strip_prefix("c:") {
                event.container = non_empty(v);
            } else if let Some(v) = field.strip_prefix("card:") {
                event.cardinality = cardinality::level(v);
            }
            // `e:` and unknown fields: ignored.
        });
    }
    let meta = take_tag_metadata(&mut event.tags);
    event.hostname = event.hostname.or(meta.host);
    event.cardinality = event.cardinality.or(meta.cardinality);
    Ok(event)
}

#[cold]
#[inline(never)]
pub(super) fn parse_service_check(s: &str) -> Result<ServiceCheck, ParseError> {
    let b = s.as_bytes();
    // `_sc|` is checked by the caller.
    let name_start = 4;
    let name_end = memchr(b'|', &b[name_start..])
        .map(|i| name_start + i)
        .ok_or(ParseError::InvalidServiceCheck)?;
    if name_end == name_start {
        return Err(ParseError::EmptyServiceCheckName);
    }
    let status_start = name_end + 1;
    let status_end = memchr(b'|', &b[status_start..]).map_or(b.len(), |i| status_start + i);
    let status = match &b[status_start..status_end] {
        b"0" => 0,
        b"1" => 1,
        b"2" => 2,
        b"3" => 3,
        _ => return Err(ParseError::InvalidServiceCheckStatus),
    };
    let mut check = ServiceCheck {
        check: s[name_start..name_end].to_owned(),
        status,
        ..ServiceCheck::default()
    };
    if status_end < b.len() {
        for_each_field(b, status_end + 1, |start, end| {
            let field = &s[start..end];
            if let Some(v) = field.strip_prefix('#') {
                check.tags = split_tags(v);
            } else if let Some(v) = field.strip_prefix("d:") {
                match parse_i64(v.as_bytes()) {
                    Some(ts) => check.timestamp = Some(ts),
                    None => tracing::debug!(field, "ignored an invalid service check timestamp"),
                }
            } else if let Some(v) = field.strip_prefix("h:") {
                check.hostname = non_empty(v);
            } else if let Some(v) = field.strip_prefix("m:") {
                check.message = non_empty(v);
            } else if let Some(v) = field.strip_prefix("c:") {
                check.container = non_empty(v);
            } else if let Some(v) = field.strip_prefix("card:") {
                check.cardinality = cardinality::level(v);
            }
            // `e:` and unknown fields: ignored.
        });
    }
    let meta = take_tag_metadata(&mut check.tags);
    check.hostname = check.hostname.or(meta.host);
    check.cardinality = check.cardinality.or(meta.cardinality);
    Ok(check)
}
