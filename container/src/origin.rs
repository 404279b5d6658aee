//! Origin detection: which container sent a DogStatsD packet, and its tags.
//!
//! Unix-socket packets carry the sender's pid (SO_PEERCRED); `$HOST_PROC/<pid>/cgroup` names its container.
//! Packets with `|c:<id>` name it directly. Both end in the same tag table, which the container collector fills
//! (initial list, `start` events) and empties on `die`/`destroy`. Lookups never block on Docker: the resolver is
//! plain synchronous code for the DogStatsD reader threads. An id we do not know yet is queued (bounded,
//! non-blocking) for the collector to inspect, so the next packet from it is tagged.

use crate::cgroup::container_id_from_proc_cgroup;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most pids remembered; the table is cleared when full (it refills from the cheap cgroup read).
const MAX_PIDS: usize = 8192;
/// Container ids remembered as already waited for.
const WAITED_CAP: usize = 1024;
/// How often a waiting reader looks at the table again.
const WAIT_POLL: Duration = Duration::from_millis(2);
/// How long "this pid is not in a container" is believed.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
struct PidEntry {
    id: Option<Arc<str>>,
    at: Instant,
}

#[derive(Debug)]
struct Inner {
    host_proc: PathBuf,
    tags: RwLock<HashMap<Arc<str>, Arc<[String]>>>,
    pids: Mutex<HashMap<i32, PidEntry>>,
    wanted: Option<mpsc::Sender<String>>,
    /// Container ids a reader already waited for (see [`OriginResolver::tags_for_pid_waiting`]).
    waited: Mutex<std::collections::HashSet<Arc<str>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Maps a pid or container id to that container's tags. Cheap to clone; `Send + Sync`; no async.
#[derive(Clone, Debug)]
pub struct OriginResolver {
    inner: Arc<Inner>,
}

impl OriginResolver {
    /// A resolver reading `<host_proc>/<pid>/cgroup`. `wanted` receives ids seen but not in the table.
    pub fn new(host_proc: PathBuf, wanted: Option<mpsc::Sender<String>>) -> Self {
        OriginResolver {
            inner: Arc::new(Inner {
                host_proc,
                tags: RwLock::new(HashMap::new()),
                pids: Mutex::new(HashMap::new()),
                wanted,
                waited: Mutex::new(std::collections::HashSet::new()),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        }
    }

    /// Records (or replaces) a container's tags.
    pub fn insert(&self, id: &str, tags: Arc<[String]>) {
        self.inner.tags.write().insert(Arc::from(id), tags);
    }

    /// Forgets a container (it died): its tags and every pid that pointed at it.
    pub fn invalidate(&self, id: &str) {
        self.inner.tags.write().remove(id);
        self.inner
            .pids
            .lock()
            .retain(|_, e| e.id.as_deref() != Some(id));
    }

    /// Forgets every container not in `keep` (used after a re-list).
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        self.inner.tags.write().retain(|k, _| keep(k));
        self.inner
            .pids
            .lock()
            .retain(|_, e| e.id.as_deref().is_none_or(keep));
    }

    /// Number of containers with tags.
    pub fn len(&self) -> usize {
        self.inner.tags.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.inner.hits.load(Relaxed),
            self.inner.misses.load(Relaxed),
        )
    }

    /// The container id of a host pid, from `$HOST_PROC/<pid>/cgroup` (cached).
    pub fn container_id_for_pid(&self, pid: i32) -> Option<Arc<str>> {
        if pid <= 0 {
            return None;
        }
        let now = Instant::now();
        if let Some(e) = self.inner.pids.lock().get(&pid) {
            if e.id.is_some() || now.duration_since(e.at) < NEGATIVE_TTL {
                return e.id.clone();
            }
        }
        let path = self.inner.host_proc.join(pid.to_string()).join("cgroup");
        let id: Option<Arc<str>> = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| container_id_from_proc_cgroup(&t))
            .map(Arc::from);
        let mut pids = self.inner.pids.lock();
        if pids.len() >= MAX_PIDS {
            pids.clear();
        }
        pids.insert(
            pid,
            PidEntry {
                id: id.clone(),
                at: now,
            },
        );
        id
    }

    /// Tags of the container the process `pid` runs in; `None` for host processes and unknown containers.
    pub fn tags_for_pid(&self, pid: i32) -> Option<Arc<[String]>> {
        let id = self.container_id_for_pid(pid)?;
        self.tags_for_container_id(&id)
    }

    /// Like [`OriginResolver::tags_for_pid`], but when the pid runs in a container the table does not know yet
    /// (its process has just started: its first packets arrive before Docker's `start` event and the inspect
    /// that follows), waits up to `max_wait` for the collector to record it, so those first samples carry the
    /// container's tags too. Waits at most once per container id, and never for host processes. Call it
    /// without holding locks the collector or other readers need.
    pub fn tags_for_pid_waiting(&self, pid: i32, max_wait: Duration) -> Option<Arc<[String]>> {
        let id = self.container_id_for_pid(pid)?;
        if let Some(t) = self.tags_for_container_id(&id) {
            return Some(t);
        }
        {
            let mut waited = self.inner.waited.lock();
            if waited.len() >= WAITED_CAP {
                waited.clear();
            }
            if !waited.insert(id.clone()) {
                return None;
            }
        }
        let deadline = Instant::now() + max_wait;
        while Instant::now() < deadline {
            std::thread::sleep(WAIT_POLL);
            if let Some(t) = self.inner.tags.read().get(&*id) {
                self.inner.hits.fetch_add(1, Relaxed);
                return Some(t.clone());
            }
        }
        None
    }

    /// Tags of a container by its id (full, or a unique prefix of at least 12 characters).
    pub fn tags_for_container_id(&self, id: &str) -> Option<Arc<[String]>> {
        let found = {
            let tags = self.inner.tags.read();
            tags.get(id).cloned().or_else(|| {
                if id.len() < 12 || id.len() >= 64 {
                    return None;
                }
                let mut it = tags.iter().filter(|(k, _)| k.starts_with(id));
                match (it.next(), it.next()) {
                    (Some((_, v)), None) => Some(v.clone()),
                    _ => None,
                }
            })
        };
        match found {
            Some(t) => {
                self.inner.hits.fetch_add(1, Relaxed);
                Some(t)
            }
            None => {
                self.inner.misses.fetch_add(1, Relaxed);
                if let Some(w) = &self.inner.wanted {
                    let looks_like_id = id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
                    if looks_like_id {
                        let _ = w.try_send(id.to_string()); // full queue: the next packet asks again
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn pid_to_tags_through_a_fake_proc_and_invalidation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("42")).unwrap();
        std::fs::write(
            dir.path().join("42/cgroup"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("7")).unwrap();
        std::fs::write(dir.path().join("7/cgroup"), "0::/user.slice\n").unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let r = OriginResolver::new(dir.path().to_path_buf(), Some(tx));
        assert_eq!(r.tags_for_pid(42), None);
        assert_eq!(
            rx.try_recv().ok().as_deref(),
            Some(ID),
            "unknown id is queued for inspection"
        );
        r.insert(ID, Arc::from(vec!["container_name:web".to_string()]));
        assert_eq!(
            r.tags_for_pid(42).unwrap().as_ref(),
            ["container_name:web".to_string()]
        );
        assert_eq!(r.tags_for_container_id(&ID[..12]).unwrap().len(), 1);
        assert_eq!(r.tags_for_pid(7), None);
        assert_eq!(r.tags_for_pid(999), None);
        assert_eq!(r.tags_for_pid(-1), None);
        r.invalidate(ID);
        assert_eq!(r.tags_for_pid(42), None);
        assert_eq!(r.tags_for_container_id(ID), None);
    }

    /// A reader that sees a container before the collector recorded it waits for the collector; a host
    /// process and a container that never shows up get no tags.
    #[test]
    fn waiting_lookup_gets_tags_recorded_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("42")).unwrap();
        std::fs::write(
            dir.path().join("42/cgroup"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
        )
        .unwrap();
        let other = "2".repeat(64);
        std::fs::create_dir_all(dir.path().join("43")).unwrap();
        std::fs::write(
            dir.path().join("43/cgroup"),
            format!("0::/system.slice/docker-{other}.scope\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("7")).unwrap();
        std::fs::write(dir.path().join("7/cgroup"), "0::/user.slice\n").unwrap();
        let r = OriginResolver::new(dir.path().to_path_buf(), None);
        let collector = {
            let r = r.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                r.insert(ID, Arc::from(vec!["container_name:web".to_string()]));
            })
        };
        let got = r.tags_for_pid_waiting(42, Duration::from_secs(10));
        collector.join().unwrap();
        assert_eq!(
            got.as_deref(),
            Some(&["container_name:web".to_string()][..])
        );
        assert_eq!(r.tags_for_pid_waiting(7, Duration::from_secs(1)), None);
        assert_eq!(r.tags_for_pid_waiting(43, Duration::from_millis(20)), None);
        assert_eq!(r.tags_for_pid_waiting(43, Duration::from_millis(20)), None);
    }
}
