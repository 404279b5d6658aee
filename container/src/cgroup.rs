//! Container resource numbers from cgroup files under `HOST_SYS`, cgroup v1 and v2.
//!
//! We read the files ourselves instead of calling Docker's stats API: one stats call per container per interval
//! costs the daemon a lot (it streams and samples for a second or more), while these files are a few reads each.
//! Paths come from the container's init process (`$HOST_PROC/<pid>/cgroup`), which works for the cgroupfs and
//! systemd drivers alike and for ECS's nested `/ecs/<task>/<id>` layout; a few well-known layouts keyed by the
//! container id are the fallback when the process is already gone.

use std::path::{Path, PathBuf};

/// Where a container's cgroup lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupPaths {
    /// One directory per controller (`None` when that controller is not mounted).
    V1 {
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
        blkio: Option<PathBuf>,
    },
    /// The unified hierarchy: one directory.
    V2(PathBuf),
}

/// Cumulative counters and current values read from a container's cgroup. `None` = not available.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CgroupStats {
    pub cpu_total_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    pub throttled_periods: Option<u64>,
    pub throttled_ns: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub mem_usage: Option<u64>,
    pub mem_limit: Option<u64>,
    pub mem_rss: Option<u64>,
    pub mem_cache: Option<u64>,
    pub mem_working_set: Option<u64>,
    pub mem_swap: Option<u64>,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
}

/// USER_HZ of `cpuacct.stat` (100 on every Linux architecture Docker runs on).
const USER_HZ_NS: u64 = 10_000_000;
/// cgroup v1 reports "no limit" as a huge page-rounded number.
const V1_UNLIMITED: u64 = 1 << 62;

/// The cgroup root under `host_sys` (`<host_sys>/fs/cgroup`).
pub fn cgroup_root(host_sys: &Path) -> PathBuf {
    host_sys.join("fs/cgroup")
}

/// True when the host mounts the unified (v2) hierarchy at the cgroup root.
pub fn is_v2(host_sys: &Path) -> bool {
    cgroup_root(host_sys).join("cgroup.controllers").is_file()
}

/// Finds a container's cgroup directories from its init pid, falling back to the usual layouts for `id`.
pub fn resolve(
    host_proc: &Path,
    host_sys: &Path,
    pid: Option<i32>,
    id: &str,
) -> Option<CgroupPaths> {
    let root = cgroup_root(host_sys);
    let v2 = is_v2(host_sys);
    let proc_file = pid
        .filter(|p| *p > 0)
        .and_then(|p| std::fs::read_to_string(host_proc.join(p.to_string()).join("cgroup")).ok());
    if v2 {
        if let Some(text) = &proc_file {
            for line in text.lines() {
                if let Some(path) = line.strip_prefix("0::") {
                    let dir = root.join(path.trim_start_matches('/'));
                    if dir.join("cgroup.procs").exists() {
                        return Some(CgroupPaths::V2(dir));
                    }
                }
            }
        }
        for cand in [
            format!("system.slice/docker-{id}.scope"),
            format!("docker/{id}"),
        ] {
            let dir = root.join(cand);
            if dir.is_dir() {
                return Some(CgroupPaths::V2(dir));
            }
        }
        return None;
    }
    let find = |ctrl: &str| -> Option<PathBuf> {
        let base = root.join(ctrl);
        if let Some(text) = &proc_file {
            for line in text.lines() {
                let mut parts = line.splitn(3, ':');
                let (_, ctrls, path) = (parts.next(), parts.next()?, parts.next()?);
                if ctrls.split(',').any(|c| c == ctrl) {
                    let dir = base.join(path.trim_start_matches('/'));
                    if dir.is_dir() {
                        return Some(dir);
                    }
                }
            }
        }
        [
            format!("docker/{id}"),
            format!("system.slice/docker-{id}.scope"),
        ]
        .into_iter()
        .map(|c| base.join(c))
        .find(|d| d.is_dir())
    };
    let paths = CgroupPaths::V1 {
        cpu: find("cpu"),
        cpuacct: find("cpuacct"),
        memory: find("memory"),
        blkio: find("blkio"),
    };
    match &paths {
        CgroupPaths::V1 {
            cpu: None,
            cpuacct: None,
            memory: None,
            blkio: None,
        } => None,
        _ => Some(paths),
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_u64(path: &Path) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

/// Value of `key` in a flat-keyed file (`key value` per line).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_ascii_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// Reads every number the docker metrics need. Missing files give `None` fields, never an error: a container
/// can disappear between listing and reading.
pub fn read_stats(paths: &CgroupPaths) -> CgroupStats {
    match paths {
        CgroupPaths::V1 {
            cpu,
            cpuacct,
            memory,
            blkio,
        } => read_v1(
            cpu.as_deref(),
            cpuacct.as_deref(),
            memory.as_deref(),
            blkio.as_deref(),
        ),
        CgroupPaths::V2(dir) => read_v2(dir),
    }
}

fn read_v1(
    cpu: Option<&Path>,
    cpuacct: Option<&Path>,
    memory: Option<&Path>,
    blkio: Option<&Path>,
) -> CgroupStats {
    let mut s = CgroupStats::default();
    if let Some(d) = cpuacct {
        s.cpu_total_ns = read_u64(&d.join("cpuacct.usage"));
        if let Some(t) = read(&d.join("cpuacct.stat")) {
            s.cpu_user_ns = keyed(&t, "user").map(|v| v.saturating_mul(USER_HZ_NS));
            s.cpu_system_ns = keyed(&t, "system").map(|v| v.saturating_mul(USER_HZ_NS));
        }
    }
    if let Some(d) = cpu {
        if let Some(t) = read(&d.join("cpu.stat")) {
            s.throttled_periods = keyed(&t, "nr_throttled");
            s.throttled_ns = keyed(&t, "throttled_time");
        }
        s.cpu_shares = read_u64(&d.join("cpu.shares"));
    }
    if let Some(d) = memory {
        s.mem_usage = read_u64(&d.join("memory.usage_in_bytes"));
        s.mem_limit = read_u64(&d.join("memory.limit_in_bytes")).filter(|l| *l < V1_UNLIMITED);
        if let Some(t) = read(&d.join("memory.stat")) {
            s.mem_rss = keyed(&t, "total_rss").or_else(|| keyed(&t, "rss"));
            s.mem_cache = keyed(&t, "total_cache").or_else(|| keyed(&t, "cache"));
            s.mem_swap = keyed(&t, "total_swap").or_else(|| keyed(&t, "swap"));
            let inactive = keyed(&t, "total_inactive_file").or_else(|| keyed(&t, "inactive_file"));
            s.mem_working_set = s.mem_usage.map(|u| u.saturating_sub(inactive.unwrap_or(0)));
        }
    }
    if let Some(d) = blkio {
        let text = [
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes",
            "blkio.io_service_bytes_recursive",
        ]
        .iter()
        .find_map(|f| read(&d.join(f)));
        if let Some(t) = text {
            let (r, w) = parse_v1_blkio(&t);
            s.io_read_bytes = Some(r);
            s.io_write_bytes = Some(w);
        }
    }
    s
}

/// Sums `Read`/`Write` over devices in a v1 `blkio.*io_service_bytes*` file (`8:0 Read 123`).
pub fn parse_v1_blkio(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(_dev), Some(op), Some(v)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Ok(v) = v.parse::<u64>() else { continue };
        match op {
            "Read" => r = r.saturating_add(v),
            "Write" => w = w.saturating_add(v),
            _ => {}
        }
    }
    (r, w)
}

/// Sums `rbytes`/`wbytes` over devices in a v2 `io.stat` file (`8:0 rbytes=1 wbytes=2 rios=3 ...`).
pub fn parse_v2_io(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        for field in line.split_ascii_whitespace().skip(1) {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            match k {
                "rbytes" => r = r.saturating_add(v),
                "wbytes" => w = w.saturating_add(v),
                _ => {}
            }
        }
    }
    (r, w)
}

fn read_v2(dir: &Path) -> CgroupStats {
    let mut s = CgroupStats::default();
    if let Some(t) = read(&dir.join("cpu.stat")) {
        let us = |k: &str| keyed(&t, k).map(|v| v.saturating_mul(1000));
        s.cpu_total_ns = us("usage_usec");
        s.cpu_user_ns = us("user_usec");
        s.cpu_system_ns = us("system_usec");
        s.throttled_periods = keyed(&t, "nr_throttled");
        s.throttled_ns = us("throttled_usec");
    }
    // cpu.weight (1..10000) maps back to v1 shares the way runc converts them.
    s.cpu_shares =
        read_u64(&dir.join("cpu.weight")).map(|w| 2 + (w.saturating_sub(1) * 262142) / 9999);
    s.mem_usage = read_u64(&dir.join("memory.current"));
    s.mem_limit = read_u64(&dir.join("memory.max")); // "max" does not parse: no limit
    s.mem_swap = read_u64(&dir.join("memory.swap.current"));
    if let Some(t) = read(&dir.join("memory.stat")) {
        s.mem_rss = keyed(&t, "anon");
        s.mem_cache = keyed(&t, "file");
        let inactive = keyed(&t, "inactive_file");
        s.mem_working_set = s.mem_usage.map(|u| u.saturating_sub(inactive.unwrap_or(0)));
    }
    if let Some(t) = read(&dir.join("io.stat")) {
        let (r, w) = parse_v2_io(&t);
        s.io_read_bytes = Some(r);
        s.io_write_bytes = Some(w);
    }
    s
}

/// Extracts a container id (64 hex characters) from a `/proc/<pid>/cgroup` file: the last path segment that
/// holds one, in any of the usual spellings (`/docker/<id>`, `docker-<id>.scope`, `/ecs/<task>/<id>`,
/// `cri-containerd-<id>.scope`).
pub fn container_id_from_proc_cgroup(text: &str) -> Option<String> {
    // Prefer the unified line, then any controller line.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_by_key(|l| !l.starts_with("0::"));
    for line in lines {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for seg in path.rsplit('/') {
            if let Some(id) = id_in_cgroup_dir_name(seg) {
                return Some(id.to_string());
            }
        }
    }
    None
}

/// The container id a cgroup path segment (a directory's name) holds: `<id>`, `docker-<id>.scope`,
/// `cri-containerd-<id>.scope`.
pub(crate) fn id_in_cgroup_dir_name(seg: &str) -> Option<&str> {
    let seg = seg.strip_suffix(".scope").unwrap_or(seg);
    let candidate = match seg.rfind('-') {
        Some(i) if seg.len() - i - 1 == 64 => &seg[i + 1..],
        _ => seg,
    };
    (candidate.len() == 64 && candidate.bytes().all(|b| b.is_ascii_hexdigit())).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "afb84d4c741d876a338d34abf3cfd5977f0f91aaf148beb9af6712ef692717da";

    #[test]
    fn ids_from_proc_cgroup_in_every_layout() {
        let v1 = format!("4:memory:/docker/{ID}\n1:cpu:/docker/{ID}\n0::/docker/{ID}\n");
        assert_eq!(container_id_from_proc_cgroup(&v1).as_deref(), Some(ID));
        let systemd = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_id_from_proc_cgroup(&systemd).as_deref(), Some(ID));
        let ecs = format!("0::/ecs/0123456789abcdef0123456789abcdef/{ID}\n");
        assert_eq!(container_id_from_proc_cgroup(&ecs).as_deref(), Some(ID));
        assert_eq!(
            container_id_from_proc_cgroup("0::/user.slice/session-1.scope\n"),
            None
        );
        assert_eq!(container_id_from_proc_cgroup(""), None);
        assert_eq!(container_id_from_proc_cgroup("garbage\n:::\n"), None);
    }

    #[test]
    fn blkio_and_io_stat_sum_devices() {
        let v1 = "8:0 Read 100\n8:0 Write 5\n8:0 Total 105\n8:16 Read 1\n8:16 Write 2\nTotal 108\n";
        assert_eq!(parse_v1_blkio(v1), (101, 7));
        let v2 = "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=1 wbytes=2\n";
        assert_eq!(parse_v2_io(v2), (11, 22));
        assert_eq!(parse_v2_io("junk"), (0, 0));
    }
}
