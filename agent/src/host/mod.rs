//! Host metrics the way the Datadog Agent's system checks name them (SPEC §5), read from `HOST_PROC` and
//! `HOST_SYS` so that the agent running in a container reports the host, not itself.
//!
//! The files are read directly: `sysinfo` and friends hard-code `/proc`. Everything is a gauge (interval 0);
//! CPU percentages and network rates are deltas between two calls, so the first call omits them.

mod procfs;

use crate::model::{IStr, Series, SeriesKind};
use kelpie_container::procfs::parse_net_dev;
use procfs::{parse_meminfo, parse_stat, physical_mounts, statvfs, CpuTimes};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;
/// Most interfaces or disks reported (a host with more is unusual; the rest are skipped).
const MAX_DEVICES: usize = 256;

/// Collects `system.*` host metrics from `HOST_PROC`/`HOST_SYS`.
#[derive(Debug)]
pub struct HostCollector {
    host_proc: PathBuf,
    #[allow(dead_code)]
    host_sys: PathBuf,
    host_root: Option<PathBuf>,
    prev_cpu: Option<CpuTimes>,
    prev_net: HashMap<String, (u64, u64)>,
    prev_net_at: Option<Instant>,
    empty_host: IStr,
    names: HashMap<&'static str, IStr>,
}

impl HostCollector {
    pub fn new(host_proc: PathBuf, host_sys: PathBuf) -> Self {
        HostCollector {
            host_proc,
            host_sys,
            host_root: None,
            prev_cpu: None,
            prev_net: HashMap::new(),
            prev_net_at: None,
            empty_host: Arc::from(""),
            names: HashMap::new(),
        }
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.host_proc.join(rel)).ok()
    }

    /// The host's view: `<proc>/1/<rel>` (init's namespaces) when readable, else `<proc>/<rel>`.
    fn read_init(&self, rel: &str) -> Option<String> {
        self.read(&format!("1/{rel}")).or_else(|| self.read(rel))
    }

    /// Where to `statvfs` a host mount point: under the host root given by [`HostCollector::with_host_root`];
    /// else through init's root (`$HOST_PROC/1/root`, needs root or CAP_SYS_PTRACE) when the host's proc is
    /// mounted elsewhere, never the agent container's own filesystem; else the mount point itself.
    fn stat_path(&self, point: &str) -> Option<(u64, u64, u64)> {
        let rel = point.trim_start_matches('/');
        if let Some(root) = &self.host_root {
            return statvfs(&root.join(rel));
        }
        if self.host_proc != Path::new("/proc") {
            return statvfs(&self.host_proc.join("1/root").join(rel));
        }
        statvfs(Path::new(point))
    }

    /// Reads disk usage through a bind mount of the host's `/` (e.g. `-v /:/host/root:ro`), for agents that
    /// run as non-root and so cannot go through `$HOST_PROC/1/root`.
    pub fn with_host_root(mut self, root: PathBuf) -> Self {
        self.host_root = Some(root);
        self
    }

    fn gauge(
        &mut self,
        out: &mut Vec<Series>,
        name: &'static str,
        tags: &[String],
        now: i64,
        v: f64,
    ) {
        if !v.is_finite() {
            return;
        }
        let name = self
            .names
            .entry(name)
            .or_insert_with(|| Arc::from(name))
            .clone();
        let mut t: Vec<IStr> = tags.iter().map(|s| Arc::from(s.as_str())).collect();
        t.sort();
        t.dedup();
        out.push(Series {
            name,
            tags: t.into(),
            host: self.empty_host.clone(),
            kind: SeriesKind::Gauge,
            interval: 0,
            points: vec![(now, v)],
        });
    }

    /// One sample of every host metric. Missing files skip their metrics; nothing here fails.
    pub fn collect(&mut self, now: i64) -> Vec<Series> {
        let mut out = Vec::with_capacity(64);
        self.cpu_and_load(&mut out, now);
        self.memory(&mut out, now);
        self.uptime(&mut out, now);
        self.disks(&mut out, now);
        self.network(&mut out, now);
        out
    }

    /// `system.cpu.*` (percentages from the change since the previous call) and `system.load.*` (only with
    /// `/proc/stat`, whose core count normalizes the load).
    fn cpu_and_load(&mut self, out: &mut Vec<Series>, now: i64) {
        let none: &[String] = &[];
        let Some(text) = self.read("stat") else {
            return;
        };
        let (cpu, cores) = parse_stat(&text);
        if cores > 0 {
            self.gauge(out, "system.cpu.num_cores", none, now, cores as f64);
        }
        if let (Some(cur), Some(prev)) = (cpu, self.prev_cpu) {
            let dt = cur.total().saturating_sub(prev.total()) as f64;
            if dt > 0.0 && cur.total() >= prev.total() {
                let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt * 100.0;
                let user = pct(cur.user + cur.nice, prev.user + prev.nice);
                let system = pct(
                    cur.system + cur.irq + cur.softirq,
                    prev.system + prev.irq + prev.softirq,
                );
                let vals = [
                    ("system.cpu.user", user),
                    ("system.cpu.system", system),
                    ("system.cpu.idle", pct(cur.idle, prev.idle)),
                    ("system.cpu.iowait", pct(cur.iowait, prev.iowait)),
                    ("system.cpu.stolen", pct(cur.steal, prev.steal)),
                    (
                        "system.cpu.guest",
                        pct(cur.guest + cur.guest_nice, prev.guest + prev.guest_nice),
                    ),
                ];
                for (n, v) in vals {
                    self.gauge(out, n, none, now, v);
                }
            }
        }
        if cpu.is_some() {
            self.prev_cpu = cpu;
        }
        let Some(load) = self.read("loadavg") else {
            return;
        };
        let v: Vec<f64> = load
            .split_ascii_whitespace()
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() == 3 {
            for (i, (n, nn)) in [
                ("system.load.1", "system.load.norm.1"),
                ("system.load.5", "system.load.norm.5"),
                ("system.load.15", "system.load.norm.15"),
            ]
            .into_iter()
            .enumerate()
            {
                self.gauge(out, n, none, now, v[i]);
                if cores > 0 {
                    self.gauge(out, nn, none, now, v[i] / cores as f64);
                }
            }
        }
    }

    /// `system.mem.*` and `system.swap.*` from `/proc/meminfo`.
    fn memory(&mut self, out: &mut Vec<Series>, now: i64) {
        let none: &[String] = &[];
        let Some(text) = self.read("meminfo") else {
            return;
        };
        let m = parse_meminfo(&text);
        if let (Some(&total), Some(&free)) = (m.get("MemTotal"), m.get("MemFree")) {
            let usable = m.get("MemAvailable").copied().unwrap_or_else(|| {
                free + m.get("Buffers").copied().unwrap_or(0)
                    + m.get("Cached").copied().unwrap_or(0)
            });
            self.gauge(out, "system.mem.total", none, now, total as f64 / MIB);
            self.gauge(out, "system.mem.free", none, now, free as f64 / MIB);
            let used = total.saturating_sub(free) as f64 / MIB;
            self.gauge(out, "system.mem.used", none, now, used);
            self.gauge(out, "system.mem.usable", none, now, usable as f64 / MIB);
            if total > 0 {
                let pct = usable as f64 / total as f64;
                self.gauge(out, "system.mem.pct_usable", none, now, pct);
            }
            if let Some(&c) = m.get("Cached") {
                self.gauge(out, "system.mem.cached", none, now, c as f64 / MIB);
            }
            if let Some(&b) = m.get("Buffers") {
                self.gauge(out, "system.mem.buffered", none, now, b as f64 / MIB);
            }
        }
        if let (Some(&st), Some(&sf)) = (m.get("SwapTotal"), m.get("SwapFree")) {
            self.gauge(out, "system.swap.total", none, now, st as f64 / MIB);
            self.gauge(out, "system.swap.free", none, now, sf as f64 / MIB);
            let used = st.saturating_sub(sf) as f64 / MIB;
            self.gauge(out, "system.swap.used", none, now, used);
            if st > 0 {
                let pct = sf as f64 / st as f64;
                self.gauge(out, "system.swap.pct_free", none, now, pct);
            }
        }
    }

    /// `system.uptime` from `/proc/uptime`.
    fn uptime(&mut self, out: &mut Vec<Series>, now: i64) {
        let Some(up) = self.read("uptime") else {
            return;
        };
        if let Some(v) = up
            .split_ascii_whitespace()
            .next()
            .and_then(|x| x.parse::<f64>().ok())
        {
            self.gauge(out, "system.uptime", &[], now, v);
        }
    }

    /// `system.disk.*` (KiB) of each physical filesystem in init's mount table.
    fn disks(&mut self, out: &mut Vec<Series>, now: i64) {
        let Some(mounts) = self.read_init("mounts") else {
            return;
        };
        let fs = self.read("filesystems");
        for m in physical_mounts(&mounts, fs.as_deref()) {
            let Some((total, used, free)) = self.stat_path(&m.point) else {
                continue;
            };
            if total == 0 {
                continue;
            }
            let tags = [format!("device:{}", m.device)];
            self.gauge(out, "system.disk.total", &tags, now, total as f64 / KIB);
            self.gauge(out, "system.disk.used", &tags, now, used as f64 / KIB);
            self.gauge(out, "system.disk.free", &tags, now, free as f64 / KIB);
            if used + free > 0 {
                let in_use = used as f64 / (used + free) as f64;
                self.gauge(out, "system.disk.in_use", &tags, now, in_use);
            }
        }
    }

    /// `system.net.bytes_rcvd` / `bytes_sent` per interface (not `lo`): bytes per second since the previous call.
    fn network(&mut self, out: &mut Vec<Series>, now: i64) {
        let Some(text) = self.read_init("net/dev") else {
            return;
        };
        let at = Instant::now();
        let secs = self.prev_net_at.map(|p| at.duration_since(p).as_secs_f64());
        let mut next = HashMap::new();
        for d in parse_net_dev(&text)
            .into_iter()
            .filter(|d| d.iface != "lo")
            .take(MAX_DEVICES)
        {
            if let (Some(secs), Some(&(prx, ptx))) = (secs, self.prev_net.get(&d.iface)) {
                if secs > 0.0 && d.rx_bytes >= prx && d.tx_bytes >= ptx {
                    let tags = [format!("device:{}", d.iface)];
                    let rx = (d.rx_bytes - prx) as f64 / secs;
                    let tx = (d.tx_bytes - ptx) as f64 / secs;
                    self.gauge(out, "system.net.bytes_rcvd", &tags, now, rx);
                    self.gauge(out, "system.net.bytes_sent", &tags, now, tx);
                }
            }
            next.insert(d.iface, (d.rx_bytes, d.tx_bytes));
        }
        self.prev_net = next;
        self.prev_net_at = Some(at);
    }
}

#[cfg(test)]
mod tests;
