//! Fault injection: how the intake misbehaves on demand ([`Failure`]) and for how long ([`Times`]), as
//! tests set it through the handle or `POST /_standin/failure`.

use super::Shared;
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

/// How the intake misbehaves.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// Answer this status (with a JSON error body) without accepting the data.
    Status(u16),
    /// Wait this long, then answer 503 without accepting the data (a hung intake).
    Stall(Duration),
    /// Close the connection without answering.
    Reset,
    /// Stop listening: connections are refused and open ones closed. `Times::Next` counts as `Always`.
    Down,
}

/// For how long a [`Failure`] lasts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Times {
    /// The next N requests.
    Next(usize),
    /// Until [`IntakeHandle::clear_failure`](super::IntakeHandle::clear_failure).
    Always,
    /// For this long from now.
    For(Duration),
}

/// JSON body of `POST /_standin/failure`: `{"kind":"status","status":500,"times":3}`,
/// `{"kind":"stall","ms":3000}`, `{"kind":"reset"}`, `{"kind":"down","for_ms":2000}`. Without `times` and
/// `for_ms` the failure lasts until `DELETE /_standin/failure`.
#[derive(Clone, Debug, Deserialize)]
pub struct FailureRequest {
    pub kind: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub ms: Option<u64>,
    #[serde(default)]
    pub times: Option<usize>,
    #[serde(default)]
    pub for_ms: Option<u64>,
}

pub(super) struct ActiveFailure {
    failure: Failure,
    remaining: Option<usize>,
    until: Option<Instant>,
}

impl Shared {
    pub(super) fn set_failure(&self, failure: Failure, times: Times) {
        let until = match times {
            Times::For(d) => Some(Instant::now() + d),
            _ => None,
        };
        if failure == Failure::Down {
            *self.failure.lock() = None;
            let until =
                until.unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
            self.down.send_replace(Some(until));
            return;
        }
        let remaining = match times {
            Times::Next(0) => {
                *self.failure.lock() = None;
                return;
            }
            Times::Next(n) => Some(n),
            _ => None,
        };
        *self.failure.lock() = Some(ActiveFailure {
            failure,
            remaining,
            until,
        });
    }

    pub(super) fn clear_failure(&self) {
        *self.failure.lock() = None;
        self.down.send_replace(None);
    }

    /// The failure to apply to this request, if any (consumes one of `Times::Next`).
    pub(super) fn take_failure(&self) -> Option<Failure> {
        let mut guard = self.failure.lock();
        let active = guard.as_mut()?;
        if active.until.is_some_and(|u| Instant::now() >= u) {
            *guard = None;
            return None;
        }
        let f = active.failure.clone();
        if let Some(rem) = active.remaining.as_mut() {
            *rem = rem.saturating_sub(1);
            if *rem == 0 {
                *guard = None;
            }
        }
        Some(f)
    }
}
