//! Docker and ECS collection for kelpie, the way the Datadog Agent's docker check sees a host.
//!
//! - [`Containers::collect`]: `docker.*` metrics for every running container, numbers read from cgroup files
//!   under `HOST_SYS` (v1 and v2) and `$HOST_PROC/<pid>/net/dev`, never from Docker's per-container stats API;
//!   one `list` call per interval and one `inspect` per new container.
//! - An event watcher task (started by [`Containers::start`]) that follows Docker's event stream, turns failed
//!   `die`s and `oom`s into events, keeps the container table and origin tags current, and feeds the ECS
//!   [`deploy::DeployDetector`]. It reconnects with backoff and de-duplicates replayed events.
//! - [`OriginResolver`]: pid or container id → tags, for DogStatsD origin detection.
//!
//! This crate does not depend on the agent: it produces [`Point`]s and [`ContainerEvent`]s that the agent turns
//! into its own series and events.
//!
//! Files: `types.rs` (what it hands over), `config.rs`, `connect.rs` (reaching Docker), `table.rs` (the
//! container table), `collect.rs` (the [`Containers`] handle and the `docker.*` metrics), `watcher.rs` (the
//! event stream), `origin.rs`, and the readers and rules `cgroup.rs`, `procfs.rs`, `tags.rs`, `filter.rs`,
//! `ecs.rs`, `deploy.rs`.
//!
//! Read with private items (`cargo doc -p kelpie-container --document-private-items`): module docs link to
//! the private parts they name.
#![allow(rustdoc::private_intra_doc_links)]

pub mod cgroup;
mod collect;
mod config;
mod connect;
pub mod deploy;
pub mod ecs;
pub mod filter;
pub mod origin;
pub mod procfs;
mod table;
pub mod tags;
mod types;
mod watcher;

pub use collect::{net_totals, Containers};
pub use config::ContainerConfig;
pub use connect::{connect, permission_hint};
pub use origin::{ContainerOrigin, OriginResolver, OriginTags};
pub use types::{CollectorStatus, ContainerError, ContainerEvent, Point, PointKind};

pub(crate) use table::{Inner, Tracked};

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds (0 before 1970): the crate's one clock for event times, uptimes and list times.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
