//! The toolkit's background work: a thread that flushes the datagram buffer every second, sends the runtime
//! metrics and uploads CPU profiles, and the sampler thread that takes those profiles.

use crate::sink::Shared;
use crate::{profiling, runtime, Error};
use cadence::{Gauged, StatsdClient};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(crate) struct ProfileSettings {
    pub(crate) agent_url: String,
    pub(crate) duration: Duration,
    pub(crate) period: Duration,
    pub(crate) tags: Vec<String>,
}

pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) runtime_client: StatsdClient,
    pub(crate) runtime_every: Option<Duration>,
    pub(crate) tokio: Option<tokio::runtime::Handle>,
    pub(crate) flush_every: Duration,
    pub(crate) profiling: Option<ProfileSettings>,
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl Worker {
    pub(crate) fn run(self, stop: watch::Receiver<bool>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(error = %e, "kelpie toolkit: no runtime for the background thread; only the service's own metrics will be sent");
                return;
            }
        };
        rt.block_on(async {
            tokio::join!(
                self.flush_loop(stop.clone()),
                self.runtime_loop(stop.clone()),
                self.profile_loop(stop.clone()),
            );
        });
    }

    async fn flush_loop(&self, stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.shared.flush(),
                _ = stopped(stop.clone()) => return,
            }
        }
    }

    async fn runtime_loop(&self, stop: watch::Receiver<bool>) {
        let Some(every) = self.runtime_every else {
            return;
        };
        let mut collector = runtime::RuntimeCollector::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped(stop.clone()) => return,
            }
            let points = collector.collect(
                Instant::now(),
                runtime::read_process(),
                self.tokio.as_ref().map(runtime::read_tokio),
            );
            for (name, value) in points {
                // Errors are counted by the sink.
                let _ = self.runtime_client.gauge_with_tags(name, value).try_send();
            }
            self.shared.flush();
        }
    }

    /// Uploads the profiles that the sampler thread ([`sample_loop`]) takes. Sampling runs on its own thread so
    /// that starting the profiler (slow the first time: the unwinder loads debug info) and symbolizing a report
    /// never delay the flush and runtime-metrics ticks of this thread.
    async fn profile_loop(&self, stop: watch::Receiver<bool>) {
        let Some(settings) = &self.profiling else {
            return;
        };
        let client = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "kelpie toolkit: no HTTP client, profiling is off");
                return;
            }
        };
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(2);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (duration, period) = (settings.duration, settings.period);
        if let Err(e) = std::thread::Builder::new()
            .name("kelpie-profiler".into())
            .spawn(move || sample_loop(duration, period, stop_rx, done_tx))
        {
            tracing::warn!(error = %e, "kelpie toolkit: could not start the profiler thread");
            return;
        }
        let mut stop_tx = Some(stop_tx);
        loop {
            let next = if stop_tx.is_some() {
                tokio::select! {
                    next = done_rx.recv() => next,
                    _ = stopped(stop.clone()) => {
                        // Dropping the sender wakes the sampler, which posts the profile in progress and exits.
                        stop_tx = None;
                        continue;
                    }
                }
            } else {
                // Stopping: wait a little for the last profile, the process is going away.
                tokio::time::timeout(Duration::from_secs(5), done_rx.recv())
                    .await
                    .ok()
                    .flatten()
            };
            let Some((result, last)) = next else {
                return;
            };
            let last = last || stop_tx.is_none();
            self.upload_one(&client, settings, result, last).await;
        }
    }

    async fn upload_one(
        &self,
        client: &reqwest::Client,
        settings: &ProfileSettings,
        profile: Result<profiling::Profile, Error>,
        last: bool,
    ) {
        let result = match profile {
            Ok(profile) => {
                // The last upload, at shutdown, gets little time.
                let limit = if last { 2 } else { 10 };
                match tokio::time::timeout(
                    Duration::from_secs(limit),
                    profiling::upload(client, &settings.agent_url, &profile, &settings.tags),
                )
                .await
                {
                    Ok(r) => r.map(|_| profile.samples),
                    Err(_) => Err(Error::Upload(format!("no answer within {limit} s"))),
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(samples) => {
                self.shared.profiles_sent.fetch_add(1, Relaxed);
                tracing::debug!(samples, "CPU profile posted");
            }
            Err(e) => {
                self.shared.profile_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "kelpie toolkit: CPU profile not sent");
            }
        }
    }
}

/// A finished profile (or why there is none) and whether it is the last one.
type ProfileResult = (Result<profiling::Profile, Error>, bool);

/// The sampler thread: a profile of `duration` every `period` until `stop` fires or is dropped; then the profile
/// in progress is finished if it covers at least a second. Blocking waits only: nothing here needs a runtime.
fn sample_loop(
    duration: Duration,
    period: Duration,
    stop: std::sync::mpsc::Receiver<()>,
    out: tokio::sync::mpsc::Sender<ProfileResult>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    // True when told to stop (a message or the sender gone), false when `d` passed.
    let wait = |d: Duration| !matches!(stop.recv_timeout(d), Err(RecvTimeoutError::Timeout));
    loop {
        let cycle = Instant::now();
        match profiling::Sampler::start() {
            Ok(sampler) => {
                let sampling_since = Instant::now();
                let stopped = wait(duration);
                if !stopped || sampling_since.elapsed() >= Duration::from_secs(1) {
                    // The uploader is bounded (2 waiting); this blocks while it is behind.
                    if out.blocking_send((sampler.finish(), stopped)).is_err() {
                        return;
                    }
                }
                if stopped {
                    return;
                }
            }
            Err(e) => {
                if out.blocking_send((Err(e), false)).is_err() {
                    return;
                }
            }
        }
        if wait(period.saturating_sub(cycle.elapsed())) {
            return;
        }
    }
}

/// A random UUID v4, the `runtime-id` Datadog's profilers tag each process with.
pub(crate) fn runtime_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_ids_are_uuids() {
        let id = runtime_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, runtime_id());
    }
}
