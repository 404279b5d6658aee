//! The container table: every running container as the collector knows it ([`Tracked`]: tags, pid, cgroup),
//! kept current by listing and inspecting (here) and by the event watcher, and mirrored into the origin
//! resolver.

use crate::cgroup::{self, CgroupPaths};
use crate::collect::Prev;
use crate::{procfs, tags, ContainerConfig, ContainerError, OriginResolver};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use bollard::Docker;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

/// A running container as the collector knows it.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub id: String,
    pub name: String,
    pub image: String,
    pub pid: Option<i32>,
    pub started_unix: Option<i64>,
    pub tags: Arc<[String]>,
    /// The configured extra tags among `tags`, with their cardinality.
    pub extra: Vec<(String, tags::TagCardinality)>,
    /// Left out of docker.* metrics by the configured filters.
    pub metrics_excluded: bool,
    pub labels: HashMap<String, String>,
    pub cgroup: Mutex<Option<CgroupPaths>>,
}

pub(crate) struct Inner {
    pub cfg: ContainerConfig,
    pub docker: Docker,
    pub origin: OriginResolver,
    pub tracked: RwLock<HashMap<String, Arc<Tracked>>>,
    pub(crate) prev: Mutex<HashMap<String, Prev>>,
    pub last_error: Mutex<Option<String>>,
    pub connected: AtomicBool,
    pub events_sent: AtomicU64,
    pub events_dropped: AtomicU64,
    pub connects: AtomicU64,
    pub ecs_reachable: Mutex<Option<bool>>,
    pub ecs_cluster: Mutex<Option<String>>,
}

impl Inner {
    /// Inspects a container; `Ok(None)` when it is gone or not running.
    pub(crate) async fn inspect(&self, id: &str) -> Result<Option<Arc<Tracked>>, ContainerError> {
        let resp = match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(r) => r,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(ContainerError::Docker(format!("inspect {id}: {e}"))),
        };
        let state = resp.state.unwrap_or_default();
        if state.running != Some(true) {
            return Ok(None);
        }
        let full_id = resp.id.unwrap_or_else(|| id.to_string());
        let name = resp
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let config = resp.config.unwrap_or_default();
        let image = config.image.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        let pid = state
            .pid
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0);
        let started_unix = state.started_at.as_deref().and_then(procfs::parse_rfc3339);
        let mut tags = tags::container_tags(&full_id, &name, &image, &labels);
        let extra = self
            .cfg
            .tag_rules
            .extra_tags(&labels, config.env.as_deref().unwrap_or_default());
        tags.extend(extra.iter().map(|(t, _)| t.clone()));
        tags.sort();
        tags.dedup();
        let metrics_excluded = self.cfg.metrics_filter.excludes(&name, &image);
        Ok(Some(Arc::new(Tracked {
            id: full_id,
            name,
            image,
            pid,
            started_unix,
            tags: tags.into(),
            extra,
            metrics_excluded,
            labels,
            cgroup: Mutex::new(None),
        })))
    }

    /// Adds a running container to the table and the origin resolver.
    pub(crate) fn track(&self, t: Arc<Tracked>) {
        self.origin.insert_with(&t.id, &t.tags, &t.extra);
        // Its cgroup directory now (a few stat calls): the stats need it anyway, and its inode lets the
        // container's `|c:in-<inode>` lines resolve at once.
        {
            let mut g = t.cgroup.lock();
            if g.is_none() {
                *g = cgroup::resolve(&self.cfg.host_proc, &self.cfg.host_sys, t.pid, &t.id);
            }
            let dir = match &*g {
                Some(CgroupPaths::V2(dir)) => Some(dir),
                Some(CgroupPaths::V1 { memory, .. }) => memory.as_ref(),
                None => None,
            };
            if let Some(m) = dir.and_then(|d| std::fs::metadata(d).ok()) {
                use std::os::unix::fs::MetadataExt;
                self.origin.learn_cgroup_inode(m.ino(), &t.id);
            }
        }
        let mut map = self.tracked.write();
        map.insert(t.id.clone(), t);
    }

    /// Forgets a container (it died or was removed).
    pub(crate) fn untrack(&self, id: &str) -> Option<Arc<Tracked>> {
        self.origin.invalidate(id);
        self.prev.lock().remove(id);
        self.tracked.write().remove(id)
    }

    pub(crate) fn set_error(&self, e: &ContainerError) {
        *self.last_error.lock() = Some(e.to_string());
    }

    /// Lists running containers and inspects the ones not tracked yet; drops tracked ones that are gone.
    /// Returns the summaries (all states) for the counts.
    pub(crate) async fn refresh(
        &self,
    ) -> Result<Vec<bollard::models::ContainerSummary>, ContainerError> {
        let opts = ListContainersOptionsBuilder::new().all(true).build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| ContainerError::Docker(format!("list containers: {e}")))?;
        let running: Vec<&str> = list
            .iter()
            .filter(|c| {
                matches!(
                    c.state,
                    Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                )
            })
            .filter_map(|c| c.id.as_deref())
            .collect();
        let missing: Vec<&str> = {
            let map = self.tracked.read();
            running
                .iter()
                .copied()
                .filter(|id| !map.contains_key(*id))
                .collect()
        };
        for id in missing {
            match self.inspect(id).await {
                Ok(Some(t)) => self.track(t),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "inspect failed; will retry next interval"),
            }
        }
        let gone: Vec<String> = {
            let map = self.tracked.read();
            map.keys()
                .filter(|k| !running.contains(&k.as_str()))
                .cloned()
                .collect()
        };
        for id in gone {
            self.untrack(&id);
        }
        Ok(list)
    }
}
