//! Which origin tags a DogStatsD line asks for: the rules of the `|card:` field and the `dd.internal.card:`
//! tag, in one place for the parser (which reads them), the enrichment (which picks the origin tags) and the
//! aggregator (which leaves the tag out of contexts).
//!
//! As the Datadog Agent 7:
//! * `|card:<level>` on a metric, event or service check asks for the origin tags of that cardinality
//!   (`none`, `low`, `orchestrator`, `high`, any case); an unknown level is ignored, as if absent.
//! * a `dd.internal.card:<level>` tag (older clients, `DD_CARDINALITY` in datadog-go) asks the same when the
//!   line has no `|card:` field; on a metric it is only looked for when there are origin tags to choose from.
//! * the tag itself never reaches Datadog: it is one of the `dd.internal.*` tags the Agent's enrichment strips
//!   ([`is_internal_tag`]).

use kelpie_container::tags::TagCardinality;

/// The tag that asks for a cardinality (`dd.internal.card:<level>`).
pub const TAG_PREFIX: &str = "dd.internal.card:";

/// The level a `|card:` field value or a `dd.internal.card:` tag value names (unknown: None).
#[inline]
pub fn level(v: &str) -> Option<TagCardinality> {
    v.parse().ok()
}

/// The level the first `dd.internal.card:<level>` tag among raw `tags` (`a:b,c`) asks for.
pub fn from_raw_tags(tags: &str) -> Option<TagCardinality> {
    let at = memchr::memmem::find(tags.as_bytes(), TAG_PREFIX.as_bytes())?;
    if at > 0 && tags.as_bytes()[at - 1] != b',' {
        return None;
    }
    let rest = &tags[at + TAG_PREFIX.len()..];
    level(&rest[..rest.find(',').unwrap_or(rest.len())])
}

/// The level a metric line asks for: its `|card:` field, else its `dd.internal.card:` tag.
#[inline]
pub fn asked_by_metric(field: Option<TagCardinality>, raw_tags: &str) -> Option<TagCardinality> {
    field.or_else(|| from_raw_tags(raw_tags))
}

/// Whether `tag` is one of the `dd.internal.*` tags the Agent's enrichment removes (`entity_id`, `card`,
/// `jmx_check_name`): they say where a sample comes from, they are not tags of it.
#[inline]
pub fn is_internal_tag(tag: &str) -> bool {
    tag.starts_with("dd.internal.")
        && (tag.starts_with("dd.internal.entity_id:")
            || tag.starts_with(TAG_PREFIX)
            || tag.starts_with("dd.internal.jmx_check_name:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_found_only_as_a_whole_tag() {
        assert_eq!(
            from_raw_tags("a:1,dd.internal.card:orchestrator,b"),
            Some(TagCardinality::Orchestrator)
        );
        assert_eq!(
            from_raw_tags("dd.internal.card:low"),
            Some(TagCardinality::Low)
        );
        assert_eq!(from_raw_tags("xdd.internal.card:high"), None);
        assert_eq!(from_raw_tags("a:1"), None);
        assert_eq!(from_raw_tags("dd.internal.card:nope"), None);
    }

    #[test]
    fn the_field_wins_over_the_tag() {
        let tags = "dd.internal.card:high";
        assert_eq!(
            asked_by_metric(Some(TagCardinality::None), tags),
            Some(TagCardinality::None)
        );
        assert_eq!(asked_by_metric(None, tags), Some(TagCardinality::High));
        assert_eq!(level("HIGH"), Some(TagCardinality::High));
    }

    #[test]
    fn internal_tags() {
        for t in [
            "dd.internal.entity_id:x",
            "dd.internal.card:low",
            "dd.internal.jmx_check_name:j",
        ] {
            assert!(is_internal_tag(t), "{t}");
        }
        for t in ["dd.internal.other:x", "dd.internal", "host:a", "d"] {
            assert!(!is_internal_tag(t), "{t}");
        }
    }
}
