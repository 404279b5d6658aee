//! Progress of a sync: a bar (`indicatif`) on a terminal, plain numbered lines otherwise (CI logs), both with
//! the waits for a rate limit's window to reset.

use crate::api::RateWait;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::time::{Duration, SystemTime};

pub struct Progress {
    total: usize,
    done: usize,
    bar: Option<ProgressBar>,
    /// The end of the last wait reported.
    shown_wait: Option<SystemTime>,
}

/// `HH:MM:SS UTC` of a time.
pub fn clock(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-12-02T20:01:40Z
    match s.get(11..19) {
        Some(hms) => format!("{hms} UTC"),
        None => s,
    }
}

/// "waiting for the rate limit until 20:01:40 UTC (in 7 s; monitors: 100 requests per 10 s)".
pub fn wait_text(w: &RateWait, now: SystemTime) -> String {
    let secs = w
        .until
        .duration_since(now)
        .unwrap_or_default()
        .as_secs_f64();
    let what = match (w.limit.limit, w.limit.period) {
        (Some(l), Some(p)) => format!("{}: {l} requests per {p} s", w.limit.name),
        _ => w.limit.name.clone(),
    };
    format!(
        "waiting for the rate limit until {} (in {secs:.0} s; {what})",
        clock(w.until)
    )
}

/// The same, short enough for the bar's line on an 80-column terminal: "rate limit: waiting until 20:01:40 UTC (7 s)".
pub fn short_wait_text(w: &RateWait, now: SystemTime) -> String {
    let secs = w
        .until
        .duration_since(now)
        .unwrap_or_default()
        .as_secs_f64();
    format!("rate limit: waiting until {} ({secs:.0} s)", clock(w.until))
}

impl Progress {
    /// A bar when `terminal`, else plain lines.
    pub fn new(total: usize, terminal: bool) -> Progress {
        let bar = terminal.then(|| {
            let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout());
            b.set_style(
                ProgressStyle::with_template("{bar:20.cyan/blue} {pos}/{len} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            total,
            done: 0,
            bar,
            shown_wait: None,
        }
    }

    /// One change done (or failed), with its line.
    pub fn line(&mut self, line: &str) {
        self.done = (self.done + 1).min(self.total);
        match &self.bar {
            Some(b) => {
                b.println(line);
                b.set_position(self.done as u64);
            }
            None => {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "[{}/{}] {line}", self.done, self.total);
                let _ = o.flush();
            }
        }
    }

    /// Called now and then with what the client waits for.
    pub fn tick(&mut self, wait: Option<RateWait>) {
        let now = SystemTime::now();
        match (&self.bar, wait) {
            (Some(b), Some(w)) => b.set_message(short_wait_text(&w, now)),
            (Some(b), None) => b.set_message(""),
            (None, Some(w)) => {
                // One line per wait (a new window's wait ends at least a second after the last one).
                let new = self.shown_wait.is_none_or(|t| {
                    w.until
                        .duration_since(t)
                        .is_ok_and(|d| d > Duration::from_millis(500))
                });
                if new {
                    self.shown_wait = Some(w.until);
                    let mut o = std::io::stdout().lock();
                    let _ = writeln!(o, "[{}/{}] {}", self.done, self.total, wait_text(&w, now));
                    let _ = o.flush();
                }
            }
            (None, None) => {}
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::LimitInfo;

    #[test]
    fn wait_lines_name_the_time_and_the_limit() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 + 3_661);
        let w = RateWait {
            until: t,
            limit: LimitInfo {
                name: "monitors".into(),
                limit: Some(100),
                period: Some(10.0),
            },
        };
        assert_eq!(
            wait_text(&w, t - Duration::from_secs(7)),
            "waiting for the rate limit until 01:01:01 UTC (in 7 s; monitors: 100 requests per 10 s)"
        );
        assert_eq!(
            short_wait_text(&w, t - Duration::from_secs(7)),
            "rate limit: waiting until 01:01:01 UTC (7 s)"
        );
    }
}
