//! Origin detection: which container sent a DogStatsD packet, and its tags.
//!
//! Unix-socket packets carry the sender's pid (SO_PEERCRED); `$HOST_PROC/<pid>/cgroup` names its container.
//! Packets with a `|c:` field name it themselves, the way Datadog's client libraries fill it in: `ci-<container
//! id>` when the client could read its id from `/proc/self/cgroup`, `in-<inode>` (the inode of its cgroup
//! directory) when it runs in a private cgroup namespace and cannot, or a bare id (older clients). An inode is
//! mapped back to a container by finding the cgroup directory with that inode under the host's cgroup mount
//! (`$HOST_SYS/fs/cgroup`: the unified hierarchy, or the `memory` one on cgroup v1, as the clients use).
//! All of them end in the same tag table, which the container collector fills
//! (initial list, `start` events) and empties on `die`/`destroy`. Lookups never block on Docker: the resolver is
//! plain synchronous code for the DogStatsD reader threads. An id we do not know yet is queued (bounded,
//! non-blocking) for the collector to inspect, so the next packet from it is tagged.

use crate::cgroup::{container_id_from_proc_cgroup, id_in_cgroup_dir_name};
use crate::tags::{tag_cardinality, TagCardinality};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
/// The cgroup tree is walked for an unknown inode at most this often.
const INODE_REWALK: Duration = Duration::from_secs(1);
/// Most cgroup directories looked at in one walk, and how deep.
const WALK_MAX_DIRS: usize = 20_000;
const WALK_MAX_DEPTH: usize = 6;

/// A container's tags as the aggregator uses them: shared, converted once when the container is recorded.
pub type OriginTags = Arc<[Arc<str>]>;

/// One container's origin tags at every cardinality, so that a line asking for another one (`|card:`) is
/// served without converting anything.
#[derive(Debug)]
pub struct ContainerOrigin {
    levels: [OriginTags; 4],
}

impl ContainerOrigin {
    /// `overrides`: tags whose cardinality is configured rather than known by their key.
    fn new(tags: &[String], overrides: &[(String, TagCardinality)]) -> Self {
        let ranked: Vec<(Arc<str>, Option<TagCardinality>)> = tags
            .iter()
            .map(|t| {
                let card = match overrides.iter().find(|(o, _)| o == t) {
                    Some((_, c)) => Some(*c),
                    None => tag_cardinality(t),
                };
                (Arc::from(t.as_str()), card)
            })
            .collect();
        // Each tag string is allocated once and shared by the levels that include it.
        let at = |max: TagCardinality| -> OriginTags {
            ranked
                .iter()
                .filter(|(_, c)| c.is_some_and(|c| c <= max))
                .map(|(t, _)| t.clone())
                .collect()
        };
        ContainerOrigin {
            levels: [
                at(TagCardinality::None),
                at(TagCardinality::Low),
                at(TagCardinality::Orchestrator),
                at(TagCardinality::High),
            ],
        }
    }

    /// The tags up to `cardinality`.
    pub fn at(&self, cardinality: TagCardinality) -> &OriginTags {
        &self.levels[cardinality as usize]
    }
}

/// Cgroup inode → container id, as found by the last walk of the cgroup tree.
#[derive(Debug, Default)]
struct Inodes {
    map: HashMap<u64, Arc<str>>,
    walked: Option<Instant>,
}

#[derive(Clone, Debug)]
struct PidEntry {
    id: Option<Arc<str>>,
    at: Instant,
}

#[derive(Debug)]
struct Inner {
    host_proc: PathBuf,
    /// The hierarchy `in-<inode>` fields point into; `None`: such fields are not resolved.
    cgroup_root: Option<PathBuf>,
    /// Container tags up to this cardinality are origin tags unless a line asks for another.
    cardinality: TagCardinality,
    inodes: Mutex<Inodes>,
    tags: RwLock<HashMap<Arc<str>, Arc<ContainerOrigin>>>,
    pids: Mutex<HashMap<i32, PidEntry>>,
    wanted: Option<mpsc::Sender<String>>,
    /// Container ids a reader already waited for (see [`OriginResolver::origin_for_pid_waiting`]).
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
                cgroup_root: None,
                cardinality: TagCardinality::High,
                inodes: Mutex::new(Inodes::default()),
                tags: RwLock::new(HashMap::new()),
                pids: Mutex::new(HashMap::new()),
                wanted,
                waited: Mutex::new(std::collections::HashSet::new()),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        }
    }

    /// Resolves `in-<inode>` container fields against the cgroup hierarchy mounted at `cgroup_mount`
    /// (`$HOST_SYS/fs/cgroup`). Call before the resolver is cloned.
    pub fn with_cgroup_mount(mut self, cgroup_mount: &Path) -> Self {
        let root = if cgroup_mount.join("cgroup.controllers").is_file() {
            cgroup_mount.to_path_buf()
        } else {
            cgroup_mount.join("memory")
        };
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.cgroup_root = Some(root);
        }
        self
    }

    /// Origin tags are the container tags up to `cardinality` unless a line asks for another (a new resolver
    /// gives them all). Call before the resolver is cloned.
    pub fn with_cardinality(mut self, cardinality: TagCardinality) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.cardinality = cardinality;
        }
        self
    }

    /// The cardinality of origin tags when a line does not ask for one.
    pub fn cardinality(&self) -> TagCardinality {
        self.inner.cardinality
    }

    /// Records (or replaces) a container's tags, each at the cardinality its key has.
    pub fn insert(&self, id: &str, tags: &[String]) {
        self.insert_with(id, tags, &[]);
    }

    /// Like [`OriginResolver::insert`], with the cardinality of some tags given (configured extra tags).
    pub fn insert_with(&self, id: &str, tags: &[String], overrides: &[(String, TagCardinality)]) {
        let origin = Arc::new(ContainerOrigin::new(tags, overrides));
        self.inner.tags.write().insert(Arc::from(id), origin);
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

    /// Tags (at the resolver's cardinality) of the container the process `pid` runs in; `None` for host
    /// processes and unknown containers.
    pub fn tags_for_pid(&self, pid: i32) -> Option<OriginTags> {
        let id = self.container_id_for_pid(pid)?;
        self.tags_for_container_id(&id)
    }

    /// Like [`OriginResolver::tags_for_pid`] (every cardinality), but when the pid runs in a container the
    /// table does not know yet
    /// (its process has just started: its first packets arrive before Docker's `start` event and the inspect
    /// that follows), waits up to `max_wait` for the collector to record it, so those first samples carry the
    /// container's tags too. Waits at most once per container id, and never for host processes. Call it
    /// without holding locks the collector or other readers need.
    pub fn origin_for_pid_waiting(
        &self,
        pid: i32,
        max_wait: Duration,
    ) -> Option<Arc<ContainerOrigin>> {
        let id = self.container_id_for_pid(pid)?;
        if let Some(o) = self.origin_for_container_id(&id) {
            return Some(o);
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

    /// The container a DogStatsD `|c:` field names: `ci-<id>`, `in-<cgroup inode>`, a bare id, or several of
    /// those separated by commas (the first one known wins).
    pub fn origin_for_container_field(&self, field: &str) -> Option<Arc<ContainerOrigin>> {
        field.split(',').find_map(|part| {
            if let Some(id) = part.strip_prefix("ci-") {
                self.origin_for_container_id(id)
            } else if let Some(inode) = part.strip_prefix("in-") {
                let id = self.container_id_for_inode(inode.parse().ok()?)?;
                self.origin_for_container_id(&id)
            } else {
                self.origin_for_container_id(part)
            }
        })
    }

    /// [`OriginResolver::origin_for_container_field`]'s tags at the resolver's cardinality.
    pub fn tags_for_container_field(&self, field: &str) -> Option<OriginTags> {
        let o = self.origin_for_container_field(field)?;
        Some(o.at(self.inner.cardinality).clone())
    }

    /// Records that container `id`'s cgroup directory has inode `inode` (the collector tells this as it
    /// tracks a container, so its `in-<inode>` lines resolve without walking the tree).
    pub fn learn_cgroup_inode(&self, inode: u64, id: &str) {
        let mut inodes = self.inner.inodes.lock();
        if inodes.map.len() >= WALK_MAX_DIRS {
            inodes.map.clear();
        }
        inodes.map.insert(inode, Arc::from(id));
    }

    /// The container whose cgroup directory has inode `inode` (under the configured cgroup mount). An inode
    /// neither learned nor seen before makes the tree be walked again, at most once per [`INODE_REWALK`].
    pub fn container_id_for_inode(&self, inode: u64) -> Option<Arc<str>> {
        let root = self.inner.cgroup_root.as_deref()?;
        let mut inodes = self.inner.inodes.lock();
        if let Some(id) = inodes.map.get(&inode) {
            return Some(id.clone());
        }
        let now = Instant::now();
        if inodes
            .walked
            .is_some_and(|t| now.duration_since(t) < INODE_REWALK)
        {
            return None;
        }
        inodes.walked = Some(now);
        inodes.map = walk_cgroup_inodes(root);
        inodes.map.get(&inode).cloned()
    }

    /// Tags (at the resolver's cardinality) of a container by its id.
    pub fn tags_for_container_id(&self, id: &str) -> Option<OriginTags> {
        let o = self.origin_for_container_id(id)?;
        Some(o.at(self.inner.cardinality).clone())
    }

    /// A container by its id (full, or a unique prefix of at least 12 characters).
    pub fn origin_for_container_id(&self, id: &str) -> Option<Arc<ContainerOrigin>> {
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

/// Every container cgroup directory under `root` (breadth first, bounded): its inode → the container id its
/// name holds. Container directories are not descended into.
fn walk_cgroup_inodes(root: &Path) -> HashMap<u64, Arc<str>> {
    use std::os::unix::fs::MetadataExt;
    let mut map = HashMap::new();
    let mut queue = std::collections::VecDeque::from([(root.to_path_buf(), 0usize)]);
    let mut seen = 0usize;
    while let Some((dir, depth)) = queue.pop_front() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            seen += 1;
            if seen > WALK_MAX_DIRS {
                return map;
            }
            let name = e.file_name();
            match name.to_str().and_then(id_in_cgroup_dir_name) {
                Some(id) => {
                    if let Ok(m) = e.metadata() {
                        map.insert(m.ino(), Arc::from(id));
                    }
                }
                None if depth + 1 < WALK_MAX_DEPTH => queue.push_back((e.path(), depth + 1)),
                None => {}
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    /// A fake `/proc` where each (pid, line) is that process's `cgroup` file.
    fn fake_proc(procs: &[(u32, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (pid, line) in procs {
            std::fs::create_dir_all(dir.path().join(pid.to_string())).unwrap();
            std::fs::write(
                dir.path().join(format!("{pid}/cgroup")),
                format!("{line}\n"),
            )
            .unwrap();
        }
        dir
    }

    #[test]
    fn pid_to_tags_through_a_fake_proc_and_invalidation() {
        let dir = fake_proc(&[
            (42, format!("0::/system.slice/docker-{ID}.scope")),
            (7, "0::/user.slice".into()),
        ]);
        let (tx, mut rx) = mpsc::channel(4);
        let r = OriginResolver::new(dir.path().to_path_buf(), Some(tx));
        assert_eq!(r.tags_for_pid(42), None);
        assert_eq!(
            rx.try_recv().ok().as_deref(),
            Some(ID),
            "unknown id is queued for inspection"
        );
        r.insert(ID, &["container_name:web".to_string()]);
        assert_eq!(&*r.tags_for_pid(42).unwrap()[0], "container_name:web");
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
        let other = "2".repeat(64);
        let dir = fake_proc(&[
            (42, format!("0::/system.slice/docker-{ID}.scope")),
            (43, format!("0::/system.slice/docker-{other}.scope")),
            (7, "0::/user.slice".into()),
        ]);
        let r = OriginResolver::new(dir.path().to_path_buf(), None);
        let collector = {
            let r = r.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                r.insert(ID, &["container_name:web".to_string()]);
            })
        };
        let got = r.origin_for_pid_waiting(42, Duration::from_secs(10));
        collector.join().unwrap();
        let got = got.expect("tags recorded while waiting");
        assert_eq!(&*got.at(TagCardinality::High)[0], "container_name:web");
        assert!(got.at(TagCardinality::Low).is_empty());
        assert!(r
            .origin_for_pid_waiting(7, Duration::from_secs(1))
            .is_none());
        assert!(r
            .origin_for_pid_waiting(43, Duration::from_millis(20))
            .is_none());
        assert!(r
            .origin_for_pid_waiting(43, Duration::from_millis(20))
            .is_none());
    }

    /// The `|c:` field in every form Datadog's clients send: `ci-<id>`, `in-<inode of the container's cgroup
    /// directory>` (found by walking a cgroup tree laid out like Docker's on v1 and with systemd on v2), a
    /// bare id, and a comma-separated list; unknown inodes and garbage resolve to nothing.
    #[test]
    fn container_field_forms_and_cgroup_inodes() {
        use std::os::unix::fs::MetadataExt;
        let other = "2".repeat(64);
        for v2 in [false, true] {
            let mount = tempfile::tempdir().unwrap();
            let (dir, other_dir) = if v2 {
                std::fs::write(mount.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
                (
                    mount.path().join(format!("system.slice/docker-{ID}.scope")),
                    mount.path().join(format!(
                        "kubepods/burstable/pod1/cri-containerd-{other}.scope"
                    )),
                )
            } else {
                (
                    mount.path().join(format!("memory/docker/{ID}")),
                    mount.path().join(format!("memory/ecs/task1/{other}")),
                )
            };
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::create_dir_all(dir.join("nested")).unwrap();
            std::fs::create_dir_all(mount.path().join("user.slice/session-1.scope")).unwrap();
            let r = OriginResolver::new(mount.path().to_path_buf(), None)
                .with_cgroup_mount(mount.path());
            r.insert(ID, &["container_name:web".to_string()]);
            let ino = std::fs::metadata(&dir).unwrap().ino();
            let name = |f: &str| r.tags_for_container_field(f).map(|t| t[0].to_string());
            let web = Some("container_name:web".to_string());
            assert_eq!(name(&format!("ci-{ID}")), web);
            assert_eq!(name(ID), web);
            assert_eq!(name(&format!("in-{ino}")), web, "v2={v2}");
            assert_eq!(name(&format!("in-999999999,ci-{ID}")), web);
            assert_eq!(name("in-notanumber"), None);
            assert_eq!(name("ci-"), None);
            // A container created after the last walk is found once the walk may run again.
            std::fs::create_dir_all(&other_dir).unwrap();
            r.insert(&other, &["container_name:db".to_string()]);
            let other_ino = std::fs::metadata(&other_dir).unwrap().ino();
            std::thread::sleep(INODE_REWALK + Duration::from_millis(50));
            assert_eq!(
                name(&format!("in-{other_ino}")),
                Some("container_name:db".to_string())
            );
            assert_eq!(r.container_id_for_inode(ino).as_deref(), Some(ID));
        }
        // Without a cgroup mount, inodes are not resolved (ids still are).
        let r = OriginResolver::new(PathBuf::from("/nonexistent"), None);
        r.insert(ID, &["container_name:web".to_string()]);
        assert!(r.tags_for_container_field("in-12345").is_none());
        // An inode the collector learned resolves without any tree to walk.
        let r = OriginResolver::new(PathBuf::from("/nonexistent"), None)
            .with_cgroup_mount(Path::new("/nonexistent"));
        r.insert(ID, &["container_name:web".to_string()]);
        assert!(r.tags_for_container_field("in-12345").is_none());
        r.learn_cgroup_inode(12345, ID);
        assert_eq!(
            r.tags_for_container_field("in-12345")
                .map(|t| t[0].to_string()),
            Some("container_name:web".to_string())
        );
        assert!(r.tags_for_container_field(&format!("ci-{ID}")).is_some());
    }

    /// Origin tags stop at the configured cardinality: low keeps image, ECS task and unified-service tags;
    /// orchestrator adds `task_arn`; high adds the container's name and id. `runtime:docker` never is one.
    #[test]
    fn origin_tags_follow_the_configured_cardinality() {
        let all: Vec<String> = [
            "container_id:abc",
            "container_name:web-1",
            "image_name:app",
            "runtime:docker",
            "service:web",
            "task_arn:arn:aws:ecs:us-east-1:1:task/c/0f",
            "task_family:web",
        ]
        .map(String::from)
        .to_vec();
        let got = |c: TagCardinality| -> Vec<String> {
            let r = OriginResolver::new(PathBuf::from("/nonexistent"), None).with_cardinality(c);
            r.insert(ID, &all);
            let t = r.tags_for_container_id(ID).unwrap();
            t.iter().map(|t| t.to_string()).collect()
        };
        assert_eq!(
            got(TagCardinality::Low),
            ["image_name:app", "service:web", "task_family:web"]
        );
        assert_eq!(
            got(TagCardinality::Orchestrator),
            [
                "image_name:app",
                "service:web",
                "task_arn:arn:aws:ecs:us-east-1:1:task/c/0f",
                "task_family:web"
            ]
        );
        assert_eq!(got(TagCardinality::High).len(), 6);
        assert!(got(TagCardinality::None).is_empty());
        // One container, every level at hand for lines that ask for another.
        let r = OriginResolver::new(PathBuf::from("/nonexistent"), None);
        r.insert(ID, &all);
        let o = r.origin_for_container_field(&format!("ci-{ID}")).unwrap();
        assert_eq!(o.at(TagCardinality::Low).len(), 3);
        assert_eq!(o.at(TagCardinality::Orchestrator).len(), 4);
        assert_eq!("ORCHESTRATOR".parse(), Ok(TagCardinality::Orchestrator));
        assert_eq!("none".parse(), Ok(TagCardinality::None));
        assert!("medium".parse::<TagCardinality>().is_err());
    }
}
