//! How the agent talks about something that keeps failing (the intake, Docker): the first failure is said at
//! once, then a summary at most once a minute while it lasts (how long, how many failures since the last
//! line), then the recovery, once. The policy lives here, with the time passed in, so that it is tested with
//! explicit timestamps; what each line says is the caller's (`forwarder::outage`, `containers`).

use std::time::{Duration, Instant};

/// While something keeps failing, a summary is said at most this often.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// One outage in progress: from its first failure to the next success.
#[derive(Debug)]
pub struct Episode {
    since: Instant,
    last_said: Instant,
    /// Failures in the whole outage, the first included.
    failures: u64,
    /// Failures since the last line about it (the first line counts the first failure as said).
    unsaid: u64,
}

/// What to say in a summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// How long since the first failure.
    pub lasted: Duration,
    /// Failures since the previous line.
    pub since_last_line: u64,
    /// Failures in the whole outage, the first included.
    pub failures: u64,
}

/// What to say when it works again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    pub lasted: Duration,
    pub failures: u64,
}

impl Episode {
    /// The first failure, at `now`: the caller says so at once.
    pub fn begin(now: Instant) -> Episode {
        Episode {
            since: now,
            last_said: now,
            failures: 1,
            unsaid: 0,
        }
    }

    /// Another failure at `now`: a summary when the last line is [`SUMMARY_EVERY`] old, else nothing to say.
    pub fn failed(&mut self, now: Instant) -> Option<Summary> {
        self.failures += 1;
        self.unsaid += 1;
        if now.saturating_duration_since(self.last_said) < SUMMARY_EVERY {
            return None;
        }
        let s = Summary {
            lasted: now.saturating_duration_since(self.since),
            since_last_line: self.unsaid,
            failures: self.failures,
        };
        self.last_said = now;
        self.unsaid = 0;
        Some(s)
    }

    /// It works again at `now`: the outage's length and failures, to say once.
    pub fn end(self, now: Instant) -> Recovery {
        Recovery {
            lasted: now.saturating_duration_since(self.since),
            failures: self.failures,
        }
    }

    /// How long it has lasted at `now`.
    pub fn lasted(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }
}

/// A duration in whole seconds, for log lines (`1m 5s`).
pub fn secs(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failure_then_a_summary_a_minute_then_the_recovery() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut e = Episode::begin(at(0));
        // Failures every 10 s: nothing to say until the first line is a minute old.
        for s in [10, 20, 30, 40, 50] {
            assert_eq!(e.failed(at(s)), None, "at {s} s");
        }
        assert_eq!(
            e.failed(at(60)),
            Some(Summary {
                lasted: Duration::from_secs(60),
                since_last_line: 6,
                failures: 7,
            })
        );
        for s in [70, 80, 90, 100, 110] {
            assert_eq!(e.failed(at(s)), None, "at {s} s");
        }
        // A late failure (a flush that took long) is summarised when it comes, counted from the last line.
        assert_eq!(
            e.failed(at(125)),
            Some(Summary {
                lasted: Duration::from_secs(125),
                since_last_line: 6,
                failures: 13,
            })
        );
        assert_eq!(e.failed(at(126)), None);
        assert_eq!(e.lasted(at(130)), Duration::from_secs(130));
        assert_eq!(
            e.end(at(130)),
            Recovery {
                lasted: Duration::from_secs(130),
                failures: 14,
            }
        );
    }

    #[test]
    fn a_short_outage_says_only_its_first_failure_and_its_end() {
        let t0 = Instant::now();
        let mut e = Episode::begin(t0);
        // Many failures in quick succession (a retry loop) still make no line before a minute.
        for ms in (100..=59_900).step_by(100) {
            assert_eq!(e.failed(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(
            e.end(t0 + Duration::from_secs(59)),
            Recovery {
                lasted: Duration::from_secs(59),
                failures: 600,
            }
        );
    }

    #[test]
    fn whole_seconds_in_lines() {
        assert_eq!(secs(Duration::from_millis(65_700)).to_string(), "1m 5s");
        assert_eq!(secs(Duration::from_millis(900)).to_string(), "0s");
    }
}
