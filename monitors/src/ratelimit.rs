//! The client's view of Datadog's rate limits, kept per rate-limit name (`X-RateLimit-Name`), so that a sync
//! spends what the account allows and no more.
//!
//! Datadog answers with `X-RateLimit-Limit`, `-Period` (windows aligned to the calendar), `-Remaining` and
//! `-Reset`, the whole seconds left in the window, rounded down. From an answer to a request sent at `sent` and
//! received at `recv` with `Reset = r`, the window ends somewhere in `[sent + r, recv + r + 1 s)`; the client
//! only starts spending a new window's budget after the later bound, when the window has surely reset.
//!
//! The budget of a window is what the last answers said remains, less the requests still in flight (counted as
//! not yet seen by the server). At the start of a new window the budget is unknown until one request (a probe)
//! comes back; a request of an endpoint whose rate-limit name is not known yet is also sent alone, since it
//! may share a bucket with others. The type is a plain state machine over `Instant`s, so it is tested without
//! sleeping; [`crate::api::Client`] drives it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Margin added to the end of a window, besides the second that `Reset`'s rounding can hide.
const SLACK: Duration = Duration::from_millis(50);

/// The rate-limit headers of one answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Headers {
    pub name: Option<String>,
    pub limit: Option<i64>,
    pub period: Option<f64>,
    pub remaining: Option<i64>,
    /// `X-RateLimit-Reset`, else `Retry-After`, in seconds.
    pub reset: Option<f64>,
}

impl Headers {
    pub fn from_map(h: &reqwest::header::HeaderMap) -> Headers {
        let num = |name: &str| -> Option<f64> {
            h.get(name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        Headers {
            name: h
                .get("x-ratelimit-name")
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            limit: num("x-ratelimit-limit").map(|v| v as i64),
            period: num("x-ratelimit-period"),
            remaining: num("x-ratelimit-remaining").map(|v| v as i64),
            reset: num("x-ratelimit-reset").or_else(|| num("retry-after")),
        }
    }

    fn any(&self) -> bool {
        self.name.is_some()
            || self.limit.is_some()
            || self.remaining.is_some()
            || self.reset.is_some()
    }
}

#[derive(Debug, Default)]
struct Budget {
    limit: Option<i64>,
    period: Option<f64>,
    /// Requests that may still be sent in the current window; `None`: unknown (one probe at a time).
    avail: Option<i64>,
    /// Requests of this name sent and not answered yet.
    in_flight: i64,
    /// When the current window has surely ended.
    window_end: Option<Instant>,
}

#[derive(Debug)]
enum Class {
    /// No answer yet; `probing`: one request is out to learn its rate-limit name.
    Unknown {
        probing: bool,
    },
    /// Answers carry no rate-limit headers.
    Unlimited,
    Named(String),
}

/// Permission to send one request; give it back with [`Limiter::answered`] or [`Limiter::lost`].
#[derive(Debug)]
pub struct Ticket {
    class: &'static str,
    name: Option<String>,
    probe: bool,
    /// For a probe: the known budgets it was counted against (it may belong to any of them).
    charged: Vec<String>,
    sent: Instant,
}

#[derive(Debug, PartialEq)]
pub enum Decision {
    Go,
    /// The budget of `name` is spent until `until`.
    WaitUntil(Instant, String),
    /// A request whose answer will tell the budget is out; wait for it.
    WaitForAnswer,
}

#[derive(Debug, Default)]
pub struct Limiter {
    classes: HashMap<&'static str, Class>,
    budgets: HashMap<String, Budget>,
}

/// What the client knows of one rate limit (for progress lines).
#[derive(Clone, Debug, PartialEq)]
pub struct LimitInfo {
    pub name: String,
    pub limit: Option<i64>,
    pub period: Option<f64>,
}

impl Limiter {
    /// Whether a request of `class` (an endpoint) may be sent at `now`; on `Go` the ticket is returned.
    pub fn try_acquire(&mut self, class: &'static str, now: Instant) -> (Decision, Option<Ticket>) {
        let state = self
            .classes
            .entry(class)
            .or_insert(Class::Unknown { probing: false });
        match state {
            Class::Unknown { probing: true } => (Decision::WaitForAnswer, None),
            Class::Unknown { probing } => {
                // It may share a bucket whose budget is spent: wait for those windows to end first.
                if let Some((end, name)) = self
                    .budgets
                    .iter()
                    .filter(|(_, b)| b.avail.is_some_and(|a| a <= 0))
                    .filter_map(|(n, b)| b.window_end.filter(|e| *e > now).map(|e| (e, n)))
                    .max()
                {
                    return (Decision::WaitUntil(end, name.clone()), None);
                }
                *probing = true;
                let mut charged = Vec::new();
                for (n, b) in self.budgets.iter_mut() {
                    if let Some(a) = b.avail.filter(|a| *a > 0) {
                        b.avail = Some(a - 1);
                        b.in_flight += 1;
                        charged.push(n.clone());
                    }
                }
                (
                    Decision::Go,
                    Some(Ticket {
                        class,
                        name: None,
                        probe: true,
                        charged,
                        sent: now,
                    }),
                )
            }
            Class::Unlimited => (
                Decision::Go,
                Some(Ticket {
                    class,
                    name: None,
                    probe: false,
                    charged: Vec::new(),
                    sent: now,
                }),
            ),
            Class::Named(name) => {
                let name = name.clone();
                let b = self.budgets.entry(name.clone()).or_default();
                if b.window_end.is_some_and(|e| now >= e) {
                    b.avail = None;
                }
                let go = match b.avail {
                    None if b.in_flight == 0 => true,
                    None => return (Decision::WaitForAnswer, None),
                    Some(a) if a > 0 => {
                        b.avail = Some(a - 1);
                        true
                    }
                    Some(_) => {
                        return match b.window_end {
                            Some(e) => (Decision::WaitUntil(e, name), None),
                            None => (Decision::WaitForAnswer, None),
                        }
                    }
                };
                debug_assert!(go);
                b.in_flight += 1;
                (
                    Decision::Go,
                    Some(Ticket {
                        class,
                        name: Some(name),
                        probe: false,
                        charged: Vec::new(),
                        sent: now,
                    }),
                )
            }
        }
    }

    fn release(&mut self, t: &Ticket) {
        if t.probe {
            if let Some(Class::Unknown { probing }) = self.classes.get_mut(t.class) {
                *probing = false;
            }
        }
        for n in t.name.iter().chain(t.charged.iter()) {
            if let Some(b) = self.budgets.get_mut(n) {
                b.in_flight = (b.in_flight - 1).max(0);
            }
        }
    }

    /// The request got no answer (network error): it gives back its place and teaches nothing.
    pub fn lost(&mut self, t: Ticket) {
        self.release(&t);
    }

    /// Learns from an answer received at `now`; `limited`: it was a 429.
    pub fn answered(&mut self, t: Ticket, h: &Headers, limited: bool, now: Instant) {
        self.release(&t);
        let name = match &h.name {
            Some(n) => n.clone(),
            None if h.any() || limited => t.class.to_string(),
            None => {
                if matches!(
                    self.classes.get(t.class),
                    None | Some(Class::Unknown { .. })
                ) {
                    self.classes.insert(t.class, Class::Unlimited);
                }
                return;
            }
        };
        self.classes.insert(t.class, Class::Named(name.clone()));
        let b = self.budgets.entry(name).or_default();
        if h.limit.is_some() {
            b.limit = h.limit;
        }
        if h.period.is_some() {
            b.period = h.period;
        }
        let reset = match h.reset.or(if limited { Some(1.0) } else { None }) {
            Some(r) => Duration::from_secs_f64(r.min(3600.0)),
            // A budget without a reset cannot be planned: stay at one request at a time.
            None => return,
        };
        let lo = t.sent + reset;
        let hi = now + reset + Duration::from_secs(1) + SLACK;
        let here = if limited {
            Some(0)
        } else {
            // The others in flight may not have been counted yet: assume they were not.
            h.remaining.map(|r| r - b.in_flight)
        };
        let Some(end) = b.window_end else {
            b.window_end = Some(hi);
            b.avail = here;
            return;
        };
        let p = b.period.unwrap_or(0.0);
        let centre = lo + (hi - lo) / 2;
        let d = if centre >= end {
            (centre - end).as_secs_f64()
        } else {
            -(end - centre).as_secs_f64()
        };
        if p >= 2.0 && d < -(p / 2.0) - 0.5 {
            // An answer from a window that is over.
            return;
        }
        if lo >= end || (p >= 2.0 && d > p / 2.0 - 0.5) {
            b.window_end = Some(hi);
            b.avail = here;
        } else {
            b.window_end = Some(end.min(hi));
            b.avail = match (b.avail, here) {
                (Some(a), Some(x)) => Some(a.min(x)),
                (None, x) => x,
                (a, None) => a,
            };
        }
    }

    /// What is known of the limit named `name`.
    pub fn info(&self, name: &str) -> LimitInfo {
        let b = self.budgets.get(name);
        LimitInfo {
            name: name.to_string(),
            limit: b.and_then(|b| b.limit),
            period: b.and_then(|b| b.period),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(remaining: i64, reset: f64) -> Headers {
        Headers {
            name: Some("monitors".into()),
            limit: Some(5),
            period: Some(10.0),
            remaining: Some(remaining),
            reset: Some(reset),
        }
    }

    fn go(l: &mut Limiter, class: &'static str, now: Instant) -> Ticket {
        let (d, t) = l.try_acquire(class, now);
        assert_eq!(d, Decision::Go);
        t.unwrap()
    }

    #[test]
    fn spends_the_window_and_waits_past_the_rounded_reset() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut l = Limiter::default();
        // The first request is a probe; nothing else goes until it is answered.
        let p = go(&mut l, "create", ms(0));
        assert_eq!(l.try_acquire("create", ms(1)).0, Decision::WaitForAnswer);
        // Window ends at 7.6 s: Reset says 7.
        l.answered(p, &hdr(4, 7.0), false, ms(10));
        let ts: Vec<Ticket> = (0..4).map(|i| go(&mut l, "create", ms(11 + i))).collect();
        // 4 in flight, remaining 0: the fifth waits for the window's end, allowing for the rounding.
        let (d, _) = l.try_acquire("create", ms(20));
        let until = match d {
            Decision::WaitUntil(u, n) => {
                assert_eq!(n, "monitors");
                u
            }
            other => panic!("{other:?}"),
        };
        assert!(until >= ms(10 + 8000), "waits at least until 8.01 s");
        for (i, t) in ts.into_iter().enumerate() {
            l.answered(t, &hdr(3 - i as i64, 7.0), false, ms(30));
        }
        assert!(matches!(
            l.try_acquire("create", ms(7_700)).0,
            Decision::WaitUntil(..)
        ));
        // After the window surely ended: one probe, then the new window's budget.
        let p = go(&mut l, "create", until);
        assert_eq!(l.try_acquire("create", until).0, Decision::WaitForAnswer);
        l.answered(p, &hdr(4, 9.0), false, until + Duration::from_millis(5));
        for _ in 0..4 {
            go(&mut l, "create", until + Duration::from_millis(6));
        }
        assert!(matches!(
            l.try_acquire("create", until + Duration::from_millis(7)).0,
            Decision::WaitUntil(..)
        ));
    }

    #[test]
    fn in_flight_requests_count_against_remaining() {
        let t0 = Instant::now();
        let mut l = Limiter::default();
        let p = go(&mut l, "list", t0);
        l.answered(p, &hdr(3, 5.0), false, t0);
        let a = go(&mut l, "list", t0);
        let _b = go(&mut l, "list", t0);
        let _c = go(&mut l, "list", t0);
        assert!(matches!(
            l.try_acquire("list", t0).0,
            Decision::WaitUntil(..)
        ));
        // A (late) answer saying 2 remain while two others are out leaves nothing to send.
        l.answered(a, &hdr(2, 5.0), false, t0);
        assert!(matches!(
            l.try_acquire("list", t0).0,
            Decision::WaitUntil(..)
        ));
    }

    #[test]
    fn endpoints_sharing_a_name_share_the_budget_and_unknown_ones_probe() {
        let t0 = Instant::now();
        let mut l = Limiter::default();
        let p = go(&mut l, "list", t0);
        l.answered(p, &hdr(1, 5.0), false, t0);
        let x = go(&mut l, "list", t0);
        // "create" is not known yet, and the only known budget is spent: its probe waits for the reset.
        assert!(matches!(
            l.try_acquire("create", t0).0,
            Decision::WaitUntil(..)
        ));
        let later = t0 + Duration::from_secs(7);
        l.answered(x, &hdr(0, 5.0), false, t0);
        let c = go(&mut l, "create", later);
        l.answered(c, &hdr(4, 9.0), false, later);
        // Now "create" is known to be "monitors": list and create draw on one budget of 4.
        for class in ["list", "create", "list", "create"] {
            go(&mut l, class, later);
        }
        assert!(matches!(
            l.try_acquire("list", later).0,
            Decision::WaitUntil(..)
        ));
        // Another name has its own budget (its first request waited for the spent one, which it may share).
        let t2 = later + Duration::from_secs(11);
        let mut other = hdr(9, 9.0);
        other.name = Some("monitor_delete".into());
        let d = go(&mut l, "delete", t2);
        l.answered(d, &other, false, t2);
        go(&mut l, "delete", t2);
        go(&mut l, "delete", t2);
    }

    #[test]
    fn a_probe_of_an_unknown_endpoint_counts_against_the_known_budgets() {
        let t0 = Instant::now();
        let mut l = Limiter::default();
        let p = go(&mut l, "list", t0);
        l.answered(p, &hdr(2, 5.0), false, t0);
        // Two left: the probe of "create" takes one of them (it may share the bucket), "list" the other.
        let c = go(&mut l, "create", t0);
        go(&mut l, "list", t0);
        assert!(matches!(
            l.try_acquire("list", t0).0,
            Decision::WaitUntil(..)
        ));
        l.answered(c, &hdr(0, 5.0), false, t0);
        assert!(matches!(
            l.try_acquire("create", t0).0,
            Decision::WaitUntil(..)
        ));
    }

    #[test]
    fn a_429_stops_the_name_until_its_reset_and_no_headers_means_no_limit() {
        let t0 = Instant::now();
        let mut l = Limiter::default();
        let p = go(&mut l, "get", t0);
        l.answered(p, &hdr(0, 2.0), true, t0);
        match l.try_acquire("get", t0).0 {
            Decision::WaitUntil(u, _) => assert!(u >= t0 + Duration::from_secs(3)),
            other => panic!("{other:?}"),
        }
        // An endpoint not seen yet may share that bucket: its first request waits too.
        assert!(matches!(
            l.try_acquire("validate", t0).0,
            Decision::WaitUntil(..)
        ));
        let t1 = t0 + Duration::from_secs(4);
        let p = go(&mut l, "validate", t1);
        l.answered(p, &Headers::default(), false, t1);
        for _ in 0..10 {
            go(&mut l, "validate", t1);
        }
    }

    #[test]
    fn a_late_answer_from_a_past_window_does_not_stop_the_new_one() {
        let t0 = Instant::now();
        let mut l = Limiter::default();
        let p = go(&mut l, "create", t0);
        l.answered(p, &hdr(1, 1.0), false, t0);
        let old = go(&mut l, "create", t0);
        // The window surely ended at ~2.05 s. The old request's answer comes after that and says 0 remain
        // (in the window that is over): the probe of the next window still goes.
        let t1 = t0 + Duration::from_millis(2100);
        assert_eq!(l.try_acquire("create", t1).0, Decision::WaitForAnswer);
        l.answered(old, &hdr(0, 0.0), false, t1);
        let p = go(&mut l, "create", t1);
        l.answered(p, &hdr(4, 9.0), false, t1);
        // And an answer from a window long past is ignored.
        let stale = go(&mut l, "create", t1);
        let mut h = hdr(0, 0.0);
        h.period = Some(10.0);
        let stale = Ticket { sent: t0, ..stale };
        l.answered(stale, &h, false, t0 + Duration::from_millis(1));
        go(&mut l, "create", t1);
    }
}
