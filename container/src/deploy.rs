//! ECS deploy detection on one host: turns "a container of task family F started at revision R while this host
//! was running F at another revision" into one event per (family, revision), whatever the number of containers
//! per task or tasks per service.
//!
//! The detector is pure state (no I/O, time passed in), so the debounce and rollback rules are unit-tested
//! without Docker; the event watcher feeds it and asks the ECS agent to confirm before committing.

use crate::tags::{image_tags, split_image};
use crate::ContainerEvent;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Most task families one host tracks; more is a misconfiguration, counted and ignored.
const MAX_FAMILIES: usize = 4096;
/// Most deploys waiting for their debounce at once.
const MAX_PENDING: usize = 256;
/// A burst of starts of one revision is bundled for at most this many debounce periods.
const MAX_BUNDLE_PERIODS: u32 = 5;

/// A container of an ECS task seen running (from the initial list or a `start` event).
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub family: String,
    pub version: String,
    pub cluster: Option<String>,
    pub task_arn: Option<String>,
    pub container_name: String,
    pub image: String,
    /// Unix seconds of the start.
    pub timestamp: i64,
}

/// A revision change waiting for its debounce to end.
#[derive(Clone, Debug)]
pub struct PendingDeploy {
    pub family: String,
    pub version: String,
    pub cluster: Option<String>,
    pub task_arns: BTreeSet<String>,
    pub containers: BTreeSet<String>,
    pub images: BTreeSet<String>,
    pub timestamp: i64,
    first_seen: Instant,
    pub deadline: Instant,
    /// How many times the ECS agent said "not running yet".
    pub confirm_attempts: u32,
}

/// Per-host deploy detector.
#[derive(Debug)]
pub struct DeployDetector {
    host: String,
    debounce: Duration,
    current: HashMap<String, String>,
    pending: HashMap<(String, String), PendingDeploy>,
    /// Observations ignored because a bound was reached.
    pub dropped: u64,
}

/// Orders revisions numerically when both parse (ECS revisions are integers), else as strings.
fn rev_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

impl DeployDetector {
    pub fn new(host: impl Into<String>, debounce: Duration) -> Self {
        DeployDetector {
            host: host.into(),
            debounce,
            current: HashMap::new(),
            pending: HashMap::new(),
            dropped: 0,
        }
    }

    /// The revision this host currently runs for `family`, as far as the detector knows.
    pub fn current(&self, family: &str) -> Option<&str> {
        self.current.get(family).map(String::as_str)
    }

    /// Records a container running when the agent started (or after a reconnect re-list, see `observe`):
    /// it sets the baseline and never emits. With several revisions running (mid-deploy), the highest wins.
    pub fn baseline(&mut self, o: &Observed) {
        let full = self.current.len() >= MAX_FAMILIES;
        match self.current.get_mut(&o.family) {
            Some(cur) => {
                if rev_cmp(&o.version, cur).is_gt() {
                    *cur = o.version.clone();
                }
            }
            None if !full => {
                self.current.insert(o.family.clone(), o.version.clone());
            }
            None => self.dropped += 1,
        }
    }

    /// A container of a task started. A family seen for the first time becomes the baseline; a start at another
    /// revision than the current one opens (or extends) a pending deploy.
    pub fn observe(&mut self, o: Observed, now: Instant) {
        let Some(cur) = self.current.get(&o.family) else {
            self.baseline(&o);
            return;
        };
        let key = (o.family.clone(), o.version.clone());
        if cur == &o.version {
            // The current revision starting again (restart, scale-up, replayed event): nothing new.
            return;
        }
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING {
            self.dropped += 1;
            return;
        }
        let debounce = self.debounce;
        let p = self.pending.entry(key).or_insert_with(|| PendingDeploy {
            family: o.family.clone(),
            version: o.version.clone(),
            cluster: None,
            task_arns: BTreeSet::new(),
            containers: BTreeSet::new(),
            images: BTreeSet::new(),
            timestamp: o.timestamp,
            first_seen: now,
            deadline: now + debounce,
            confirm_attempts: 0,
        });
        if p.cluster.is_none() {
            p.cluster = o.cluster;
        }
        if let Some(a) = o.task_arn {
            p.task_arns.insert(a);
        }
        if p.containers.len() < 64 {
            p.containers.insert(o.container_name);
        }
        if p.images.len() < 16 && !o.image.is_empty() {
            p.images.insert(o.image);
        }
        p.timestamp = p.timestamp.min(o.timestamp);
        let cap = p.first_seen + debounce * MAX_BUNDLE_PERIODS;
        p.deadline = (now + debounce).min(cap).max(p.deadline);
    }

    /// When the next pending deploy is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Removes and returns the deploys whose debounce has ended, oldest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<PendingDeploy> {
        let keys: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut due: Vec<_> = keys
            .into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .collect();
        due.sort_by_key(|p| p.deadline);
        due
    }

    /// Puts a deploy back to wait another debounce period (the ECS agent does not report it running yet).
    pub fn retry(&mut self, mut p: PendingDeploy, now: Instant) {
        p.confirm_attempts += 1;
        p.deadline = now + self.debounce;
        let key = (p.family.clone(), p.version.clone());
        self.pending.entry(key).or_insert(p);
    }

    /// Makes `p` the current revision of its family and returns its event, or `None` when the family already
    /// runs that revision (a change that was undone before its debounce ended).
    pub fn commit(&mut self, p: PendingDeploy) -> Option<ContainerEvent> {
        let old = self.current.get(&p.family)?.clone();
        if old == p.version {
            return None;
        }
        self.current.insert(p.family.clone(), p.version.clone());
        Some(deploy_event(&self.host, &old, &p))
    }
}

/// Builds the SPEC §5 deploy event.
pub fn deploy_event(host: &str, old: &str, p: &PendingDeploy) -> ContainerEvent {
    let rollback = rev_cmp(&p.version, old).is_lt();
    let cluster = p.cluster.clone().unwrap_or_default();
    let mut title = format!(
        "ECS deploy: {} rev {} → {} on {}",
        p.family, old, p.version, host
    );
    if title.chars().count() > 100 {
        title = title.chars().take(99).collect::<String>() + "…";
    }
    let mut tags = vec![
        "event_type:deploy".to_string(),
        format!("task_family:{}", p.family),
        format!("task_version:{}", p.version),
        format!("previous_task_version:{old}"),
    ];
    if !cluster.is_empty() {
        tags.push(format!("ecs_cluster_name:{cluster}"));
    }
    for img in &p.images {
        tags.extend(image_tags(&split_image(img)));
    }
    tags.sort();
    tags.dedup();
    let kind = if rollback { "Rollback" } else { "Deploy" };
    let mut text = format!(
        "{kind} of task definition {}: revision {} → {} on host {}.",
        p.family, old, p.version, host
    );
    if !cluster.is_empty() {
        text.push_str(&format!("\nCluster: {cluster}"));
    }
    if !p.containers.is_empty() {
        let names: Vec<&str> = p.containers.iter().map(String::as_str).collect();
        text.push_str(&format!("\nContainers: {}", names.join(", ")));
    }
    if !p.task_arns.is_empty() {
        let arns: Vec<&str> = p.task_arns.iter().map(String::as_str).collect();
        text.push_str(&format!("\nTasks: {}", arns.join(", ")));
    }
    ContainerEvent {
        title,
        text,
        alert_type: if rollback { "warning" } else { "info" },
        aggregation_key: Some(format!("ecs_deploy:{cluster}:{}:{}", p.family, p.version)),
        source_type_name: "docker",
        timestamp: p.timestamp,
        tags,
        priority: Some("normal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(family: &str, version: &str, container: &str, task: &str) -> Observed {
        Observed {
            family: family.into(),
            version: version.into(),
            cluster: Some("prod".into()),
            task_arn: Some(task.into()),
            container_name: container.into(),
            image: format!("app:{version}"),
            timestamp: 1_700_000_000,
        }
    }

    fn drain(d: &mut DeployDetector, now: Instant) -> Vec<ContainerEvent> {
        d.take_due(now)
            .into_iter()
            .filter_map(|p| d.commit(p))
            .collect()
    }

    #[test]
    fn several_containers_and_tasks_give_one_event() {
        let t0 = Instant::now();
        let deb = Duration::from_secs(2);
        let mut d = DeployDetector::new("host-a", deb);
        d.baseline(&obs("web", "41", "nginx", "t1"));
        d.baseline(&obs("web", "41", "app", "t1"));
        for (i, c) in ["nginx", "app", "nginx", "app"].iter().enumerate() {
            d.observe(
                obs("web", "42", c, &format!("t{}", 2 + i / 2)),
                t0 + Duration::from_millis(100 * i as u64),
            );
        }
        assert!(
            drain(&mut d, t0 + Duration::from_secs(1)).is_empty(),
            "debounce not over yet"
        );
        let ev = drain(&mut d, t0 + Duration::from_secs(3));
        assert_eq!(ev.len(), 1);
        let e = &ev[0];
        assert_eq!(e.title, "ECS deploy: web rev 41 → 42 on host-a");
        assert_eq!(e.alert_type, "info");
        assert_eq!(e.aggregation_key.as_deref(), Some("ecs_deploy:prod:web:42"));
        for t in [
            "event_type:deploy",
            "task_family:web",
            "task_version:42",
            "previous_task_version:41",
            "ecs_cluster_name:prod",
            "docker_image:app:42",
        ] {
            assert!(e.tags.iter().any(|x| x == t), "missing {t} in {:?}", e.tags);
        }
        assert!(e.text.contains("t2") && e.text.contains("t3"));
        assert_eq!(d.current("web"), Some("42"));
        // The same revision starting again later (restart, reconnect replay) says nothing.
        d.observe(
            obs("web", "42", "nginx", "t4"),
            t0 + Duration::from_secs(10),
        );
        assert!(drain(&mut d, t0 + Duration::from_secs(20)).is_empty());
    }

    #[test]
    fn back_and_forth_gives_two_events_the_second_a_rollback() {
        let t0 = Instant::now();
        let deb = Duration::from_secs(1);
        let mut d = DeployDetector::new("h", deb);
        d.baseline(&obs("web", "41", "c", "t1"));
        d.observe(obs("web", "42", "c", "t2"), t0);
        let a = drain(&mut d, t0 + Duration::from_secs(2));
        d.observe(obs("web", "41", "c", "t3"), t0 + Duration::from_secs(3));
        let b = drain(&mut d, t0 + Duration::from_secs(5));
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].alert_type, "warning");
        assert_eq!(b[0].title, "ECS deploy: web rev 42 → 41 on h");
        assert!(b[0].tags.iter().any(|t| t == "previous_task_version:42"));
    }

    #[test]
    fn baseline_and_new_families_emit_nothing() {
        let t0 = Instant::now();
        let mut d = DeployDetector::new("h", Duration::from_millis(10));
        d.baseline(&obs("a", "3", "c", "t"));
        d.baseline(&obs("a", "4", "c", "t")); // mid-deploy at start: highest wins
        d.observe(obs("b", "7", "c", "t"), t0); // first sighting of a family
        d.observe(obs("a", "4", "c", "t"), t0);
        assert!(drain(&mut d, t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(d.current("a"), Some("4"));
        assert_eq!(d.current("b"), Some("7"));
    }

    #[test]
    fn a_change_undone_within_the_debounce_is_dropped() {
        let t0 = Instant::now();
        let mut d = DeployDetector::new("h", Duration::from_secs(1));
        d.baseline(&obs("a", "10", "c", "t"));
        d.observe(obs("a", "11", "c", "t"), t0);
        d.observe(obs("a", "10", "c", "t"), t0); // current revision again: ignored
        let ev = drain(&mut d, t0 + Duration::from_secs(2));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].title, "ECS deploy: a rev 10 → 11 on h");
    }

    #[test]
    fn long_titles_are_cut_to_100_chars() {
        let t0 = Instant::now();
        let fam = "f".repeat(150);
        let mut d = DeployDetector::new("h", Duration::from_millis(1));
        d.baseline(&obs(&fam, "1", "c", "t"));
        d.observe(obs(&fam, "2", "c", "t"), t0);
        let ev = drain(&mut d, t0 + Duration::from_secs(1));
        assert_eq!(ev[0].title.chars().count(), 100);
    }

    #[test]
    fn retry_keeps_waiting() {
        let t0 = Instant::now();
        let mut d = DeployDetector::new("h", Duration::from_secs(1));
        d.baseline(&obs("a", "1", "c", "t"));
        d.observe(obs("a", "2", "c", "t"), t0);
        let due = d.take_due(t0 + Duration::from_secs(1));
        assert_eq!(due.len(), 1);
        d.retry(due.into_iter().next().unwrap(), t0 + Duration::from_secs(1));
        assert!(d.take_due(t0 + Duration::from_millis(1500)).is_empty());
        let due = d.take_due(t0 + Duration::from_secs(2));
        assert_eq!(due[0].confirm_attempts, 1);
    }
}
