//! Wall-clock time as the agent stamps it: Unix seconds (points, events, the status) and the time since the
//! epoch (flush boundaries, file names). One definition, so every stage agrees on what "now" means.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch (zero if the clock is set before it).
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    since_epoch().as_secs() as i64
}
