//! [`Guard`]: keeps the toolkit running, tells what it counted ([`Stats`]), and on drop stops the background
//! thread and flushes what is queued.

use crate::sink::Shared;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the toolkit has counted since start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Points dropped because the in-process queue was full.
    pub dropped_queue_full: u64,
    /// Datagrams the socket refused (agent not listening, its buffer full).
    pub send_errors: u64,
    /// Profiles the agent accepted.
    pub profiles_sent: u64,
    /// Profiles that could not be taken or posted.
    pub profile_errors: u64,
}

/// Keeps the toolkit running; dropping it stops the background thread and flushes what is queued.
pub struct Guard {
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: Option<watch::Sender<bool>>,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Guard {
    /// Sends what is buffered now (waiting up to a second for the queue to drain).
    pub fn flush(&self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.shared.queue.queued() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.shared.flush();
    }

    /// Counters since start-up.
    pub fn stats(&self) -> Stats {
        Stats {
            dropped_queue_full: self.shared.queue_full.load(Relaxed),
            send_errors: self.shared.sent_errors.load(Relaxed),
            profiles_sent: self.shared.profiles_sent.load(Relaxed),
            profile_errors: self.shared.profile_errors.load(Relaxed),
        }
    }

    /// Stops the background thread (posting a profile in progress if it covers at least a second) and flushes.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the kelpie toolkit thread panicked");
            }
        }
        self.flush();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop_now();
    }
}
