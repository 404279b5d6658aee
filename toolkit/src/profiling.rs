//! CPU profiles, posted to the agent like Datadog's profilers post theirs.
//!
//! Every `period`, the profiler samples the process's CPU (SIGPROF, via the `pprof` crate) for `duration`,
//! encodes the result as a gzip'd pprof protobuf and posts it to `<agent>/profiling/v1/input` as
//! `multipart/form-data` in Datadog's profile intake v2 shape (event version 4):
//!
//! - part `event` (file `event.json`, `application/json`):
//!   `{"attachments":["cpu.pprof"],"start":"<RFC 3339>","end":"<RFC 3339>","family":"native","version":"4",
//!   "tags_profiler":"service:…,env:…,version:…,language:rust,runtime:rust,runtime-id:…,process_id:…,…"}`;
//! - part `cpu.pprof` (file `cpu.pprof`, `application/octet-stream`): the gzip'd pprof.
//!
//! `family` is `native` because that is the family Datadog's backend files profiles of compiled languages
//! (C, C++, Rust: those of its native profiler) under; `language:rust` in the tags says which.
//! The agent forwards the body untouched to Datadog's `/api/v2/profile`.

use crate::Error;
use flate2::write::GzEncoder;
use flate2::Compression;
use pprof::protos::Message;
use std::io::Write;
use std::time::{Duration, SystemTime};

/// The path the agent serves profiles on (the trace agent's, as in Datadog's profilers).
pub const INPUT_PATH: &str = "/profiling/v1/input";
/// Name of the pprof attachment.
pub const ATTACHMENT: &str = "cpu.pprof";
/// Sampling frequency, Hz. Datadog's profilers use about 100 Hz; 99 avoids lock-step with 100 Hz timers.
pub const FREQUENCY_HZ: i32 = 99;

/// One finished profile, ready to post.
#[derive(Debug, Clone)]
pub struct Profile {
    pub start: SystemTime,
    pub end: SystemTime,
    /// gzip'd pprof protobuf.
    pub pprof_gz: Vec<u8>,
    /// Number of samples in it.
    pub samples: usize,
}

/// A running CPU sampler (SIGPROF timer). Only one can run per process.
pub struct Sampler {
    guard: pprof::ProfilerGuard<'static>,
    start: SystemTime,
}

impl Sampler {
    pub fn start() -> Result<Sampler, Error> {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY_HZ)
            // Unwinding through these while they hold locks can deadlock (the pprof crate's advice).
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map_err(|e| {
                // pprof keeps samples in a temporary file: a read-only container without a /tmp fails here.
                Error::Profiler(format!(
                    "could not start sampling ({e}); it needs a writable temporary directory \
                     ($TMPDIR or /tmp: mount a tmpfs there in a read-only container)"
                ))
            })?;
        Ok(Sampler {
            guard,
            start: SystemTime::now(),
        })
    }

    /// Stops sampling and builds the gzip'd pprof (symbolization happens here: expect tens of milliseconds).
    pub fn finish(self) -> Result<Profile, Error> {
        let end = SystemTime::now();
        let report = self
            .guard
            .report()
            .build()
            .map_err(|e| Error::Profiler(e.to_string()))?;
        drop(self.guard);
        let profile = report.pprof().map_err(|e| Error::Profiler(e.to_string()))?;
        let samples = profile.sample.len();
        let raw = profile.encode_to_vec();
        let mut gz = GzEncoder::new(
            Vec::with_capacity(raw.len() / 3 + 64),
            Compression::default(),
        );
        gz.write_all(&raw)
            .and_then(|_| gz.finish())
            .map(|pprof_gz| Profile {
                start: self.start,
                end,
                pprof_gz,
                samples,
            })
            .map_err(|e| Error::Profiler(format!("gzip failed: {e}")))
    }
}

/// The `event.json` of a profile upload.
pub fn event_json(profile: &Profile, tags: &[String]) -> serde_json::Value {
    serde_json::json!({
        "attachments": [ATTACHMENT],
        "start": humantime::format_rfc3339_millis(profile.start).to_string(),
        "end": humantime::format_rfc3339_millis(profile.end).to_string(),
        "family": "native",
        "version": "4",
        "tags_profiler": tags.join(","),
    })
}

/// Posts one profile to `<agent_url>/profiling/v1/input`.
pub async fn upload(
    client: &reqwest::Client,
    agent_url: &str,
    profile: &Profile,
    tags: &[String],
) -> Result<(), Error> {
    let event = serde_json::to_vec(&event_json(profile, tags))
        .map_err(|e| Error::Upload(format!("could not encode event.json: {e}")))?;
    let part = |bytes: Vec<u8>, file: &'static str, mime: &str| {
        reqwest::multipart::Part::bytes(bytes)
            .file_name(file)
            .mime_str(mime)
            .map_err(|e| Error::Upload(e.to_string()))
    };
    let form = reqwest::multipart::Form::new()
        .part("event", part(event, "event.json", "application/json")?)
        .part(
            ATTACHMENT,
            part(
                profile.pprof_gz.clone(),
                ATTACHMENT,
                "application/octet-stream",
            )?,
        );
    let url = format!("{agent_url}{INPUT_PATH}");
    let response = client
        .post(&url)
        .header("DD-EVP-ORIGIN", "kelpie-toolkit")
        .header("DD-EVP-ORIGIN-VERSION", env!("CARGO_PKG_VERSION"))
        .multipart(form)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| Error::Upload(format!("POST {url} failed: {e}")))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(Error::Upload(format!("POST {url} answered {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_shape() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = Profile {
            start,
            end: start + Duration::from_secs(15),
            pprof_gz: vec![1, 2, 3],
            samples: 0,
        };
        let e = event_json(&p, &["service:a".into(), "env:b".into()]);
        assert_eq!(e["attachments"], serde_json::json!(["cpu.pprof"]));
        assert_eq!(e["start"], "2023-11-14T22:13:20.000Z");
        assert_eq!(e["end"], "2023-11-14T22:13:35.000Z");
        assert_eq!(e["version"], "4");
        assert_eq!(e["family"], "native");
        assert_eq!(e["tags_profiler"], "service:a,env:b");
    }
}
