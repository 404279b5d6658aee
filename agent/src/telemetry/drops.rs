//! Every reason the agent drops data for, defined once: its key (`dogstatsd.dropped.<key>` in the status JSON,
//! `reason:<key>` on the `kelpie.<section>.dropped` metric), the section it is filed under and what it means.
//! The status JSON, the status text and the self metrics are all derived from [`DropReason::ALL`], so a
//! reason cannot be counted somewhere and missing elsewhere.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The part of the agent a drop happens in: where its count shows in the status and which `kelpie.*.dropped`
/// metric carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropSection {
    /// Between the sockets and the aggregator: `dogstatsd.dropped`, `kelpie.dogstatsd.dropped`.
    Dogstatsd,
    /// Turning a flush into intake payloads: `encode.dropped`, `kelpie.encode.dropped`.
    Encode,
    /// Delivery to the intake (and profile uploads handed to it): `forwarder.transactions.dropped`,
    /// `kelpie.forwarder.dropped`.
    Forwarder,
}

impl DropSection {
    pub const ALL: [DropSection; 3] = [
        DropSection::Dogstatsd,
        DropSection::Encode,
        DropSection::Forwarder,
    ];

    /// The section's name: the status JSON's top-level key and the middle of `kelpie.<name>.dropped`.
    pub const fn name(self) -> &'static str {
        match self {
            DropSection::Dogstatsd => "dogstatsd",
            DropSection::Encode => "encode",
            DropSection::Forwarder => "forwarder",
        }
    }

    /// The self metric that counts this section's drops, tagged `reason:<key>`.
    pub const fn metric(self) -> &'static str {
        match self {
            DropSection::Dogstatsd => "kelpie.dogstatsd.dropped",
            DropSection::Encode => "kelpie.encode.dropped",
            DropSection::Forwarder => "kelpie.forwarder.dropped",
        }
    }
}

/// Defines [`DropReason`] and its table from one list: `Variant => "key", Section, shown_at_zero, "meaning";`.
macro_rules! drop_reasons {
    ($($variant:ident => $key:literal, $section:ident, $shown:literal, $meaning:literal;)+) => {
        /// Why something was dropped. Count one with [`Telemetry::count_drop`](super::Telemetry::count_drop).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DropReason {
            $(#[doc = $meaning] $variant,)+
        }

        impl DropReason {
            /// Every reason, in the order of the table.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant),+];

            /// The snake_case key of the status JSON and of the metric's `reason:` tag.
            pub const fn key(self) -> &'static str {
                match self { $(DropReason::$variant => $key,)+ }
            }

            /// Where the reason is counted.
            pub const fn section(self) -> DropSection {
                match self { $(DropReason::$variant => DropSection::$section,)+ }
            }

            /// Shown in the status (and sent as a metric) even before anything was dropped for it: the drops
            /// an operator looks for first.
            pub const fn shown_at_zero(self) -> bool {
                match self { $(DropReason::$variant => $shown,)+ }
            }

            /// What the reason means, in one line.
            pub const fn meaning(self) -> &'static str {
                match self { $(DropReason::$variant => $meaning,)+ }
            }
        }
    };
}

drop_reasons! {
    Kernel => "kernel", Dogstatsd, true,
        "the kernel dropped datagrams: a UDP socket's receive buffer overflowed (read with SO_RXQ_OVFL)";
    QueueFull => "queue_full", Dogstatsd, true,
        "datagrams dropped whole: the queue between the socket readers and the workers was full";
    DatagramTruncated => "datagram_truncated", Dogstatsd, false,
        "the cut last line of a datagram longer than dogstatsd_buffer_size";
    UdsStreamConnectionLimit => "uds_stream_connection_limit", Dogstatsd, false,
        "Unix stream connections refused: too many open, or no thread could be started for one";
    UdsStreamPartialFrame => "uds_stream_partial_frame", Dogstatsd, false,
        "Unix stream connections closed in the middle of a frame";
    UdsStreamFrameTooLarge => "uds_stream_frame_too_large", Dogstatsd, false,
        "Unix stream connections closed on a frame larger than dogstatsd_buffer_size";
    NonFiniteValue => "non_finite_value", Dogstatsd, false,
        "NaN or infinite values (the Datadog Agent drops them too)";
    TimestampUnsupportedType => "timestamp_unsupported_type", Dogstatsd, false,
        "values with a |T timestamp of a type other than gauge or count";
    MetricBlocklist => "metric_blocklist", Dogstatsd, false,
        "samples of metrics named in statsd_metric_blocklist";
    ContextLimit => "context_limit", Dogstatsd, false,
        "samples of new contexts refused past the context limit (from memory_limit)";
    SketchFull => "sketch_full", Dogstatsd, false,
        "distribution samples a context's sketch had no room for";
    BucketBacklog => "bucket_backlog", Dogstatsd, false,
        "a context's closed bucket discarded because too many closed buckets were waiting for the flush";
    SetMemberLimit => "set_member_limit", Dogstatsd, false,
        "set members past the 10,000 kept per context";
    TimestampedLimit => "timestamped_limit", Dogstatsd, false,
        "timestamped values past the number held until the next flush";
    EventQueueFull => "event_queue_full", Dogstatsd, false,
        "events dropped: the queue to the flush was full";
    ServiceCheckQueueFull => "service_check_queue_full", Dogstatsd, false,
        "service checks dropped: the queue to the flush was full";
    PayloadTooLarge => "payload_too_large", Encode, false,
        "series, sketches or events larger on their own than a whole intake request";
    SeriesEncodeError => "series_encode_error", Encode, false,
        "series of a flush lost because their payloads could not be encoded";
    SketchEncodeError => "sketch_encode_error", Encode, false,
        "sketches of a flush lost because their payloads could not be encoded";
    EventEncodeError => "event_encode_error", Encode, false,
        "events that could not be encoded";
    ServiceCheckEncodeError => "service_check_encode_error", Encode, false,
        "service checks of a flush lost because their payload could not be encoded";
    ForwarderStopped => "forwarder_stopped", Forwarder, false,
        "payloads submitted after the forwarder stopped";
    RetryQueueFull => "retry_queue_full", Forwarder, false,
        "the oldest payloads held in memory, over the forwarder's memory cap without storage";
    DiskFull => "disk_full", Forwarder, false,
        "the oldest stored payloads, over forwarder_storage_max_size_in_bytes";
    DiskError => "disk_error", Forwarder, false,
        "payloads that could not be written to forwarder_storage_path";
    DiskCorrupt => "disk_corrupt", Forwarder, false,
        "stored payload files that could not be read back";
    Shutdown => "shutdown", Forwarder, false,
        "payloads still queued at the shutdown deadline, without storage";
    Http400 => "http_400", Forwarder, false,
        "payloads the intake refused with HTTP 400";
    Http403 => "http_403", Forwarder, false,
        "payloads the intake refused with HTTP 403 (API key)";
    Http413 => "http_413", Forwarder, false,
        "payloads the intake refused with HTTP 413 (too large)";
    Http4xx => "http_4xx", Forwarder, false,
        "payloads the intake refused with another 4xx status";
    HttpUnexpected => "http_unexpected", Forwarder, false,
        "payloads answered with a status that is neither success, retry nor a 4xx";
    ProfileLocalMode => "profile_local_mode", Forwarder, false,
        "profile uploads received in local mode (nothing is sent)";
    ProfileTooLarge => "profile_too_large", Forwarder, false,
        "profile uploads larger than the intake accepts";
    ProfileBusy => "profile_busy", Forwarder, false,
        "profile uploads refused while too many were in flight";
    ProfileBadContentType => "profile_bad_content_type", Forwarder, false,
        "profile uploads that were not multipart/form-data";
    ProfileReadError => "profile_read_error", Forwarder, false,
        "profile uploads whose body could not be read";
}

impl DropReason {
    /// The reason with this key, if any.
    pub fn from_key(key: &str) -> Option<DropReason> {
        DropReason::ALL.iter().copied().find(|r| r.key() == key)
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// Counts by reason, one section's worth (each section only counts its own reasons).
#[derive(Debug)]
pub struct Reasons([AtomicU64; DropReason::ALL.len()]);

impl Default for Reasons {
    fn default() -> Self {
        Reasons(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Reasons {
    pub(crate) fn add(&self, reason: DropReason, n: u64) {
        self.0[reason as usize].fetch_add(n, Relaxed);
    }

    /// What was dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize].load(Relaxed)
    }

    /// The reasons something was dropped for, by key.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        DropReason::ALL
            .iter()
            .map(|&r| (r.key(), self.get(r)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// What the status shows for `section`: [`snapshot`](Self::snapshot) plus the reasons shown at zero.
    pub fn shown(&self, section: DropSection) -> BTreeMap<&'static str, u64> {
        DropReason::ALL
            .iter()
            .filter(|r| r.section() == section)
            .map(|&r| (r, self.get(r)))
            .filter(|&(r, n)| n > 0 || r.shown_at_zero())
            .map(|(r, n)| (r.key(), n))
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &r in DropReason::ALL {
            assert!(seen.insert(r.key()), "{} twice", r.key());
            assert!(
                r.key()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                r.key()
            );
            assert_eq!(DropReason::from_key(r.key()), Some(r));
            assert!(!r.meaning().is_empty());
        }
    }
}
