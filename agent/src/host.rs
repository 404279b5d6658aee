//! Host metrics the way the Datadog Agent's system checks name them (SPEC §5), read from `HOST_PROC` and
//! `HOST_SYS` so that the agent running in a container reports the host, not itself.
//!
//! The files are read directly: `sysinfo` and friends hard-code `/proc`. Everything is a gauge (interval 0);
//! CPU percentages and network rates are deltas between two calls, so the first call omits them.

use crate::model::{IStr, Series, SeriesKind};
use kelpie_container::procfs::parse_net_dev;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;
/// Most interfaces or disks reported (a host with more is unusual; the rest are skipped).
const MAX_DEVICES: usize = 256;

/// Cumulative CPU jiffies from the first line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CpuTimes {
    user: u64,
    nice: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    irq: u64,
    softirq: u64,
    steal: u64,
    guest: u64,
    guest_nice: u64,
}

impl CpuTimes {
    fn total(&self) -> u64 {
        // guest time is already counted in user/nice by the kernel.
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
}

/// Parses `/proc/stat`: the aggregate `cpu` line and the number of `cpuN` lines.
fn parse_stat(text: &str) -> (Option<CpuTimes>, usize) {
    let mut agg = None;
    let mut cores = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            cores += 1;
            continue;
        }
        let v: Vec<u64> = rest
            .split_ascii_whitespace()
            .map_while(|x| x.parse().ok())
            .collect();
        if v.len() >= 4 {
            let g = |i: usize| v.get(i).copied().unwrap_or(0);
            agg = Some(CpuTimes {
                user: g(0),
                nice: g(1),
                system: g(2),
                idle: g(3),
                iowait: g(4),
                irq: g(5),
                softirq: g(6),
                steal: g(7),
                guest: g(8),
                guest_nice: g(9),
            });
        }
    }
    (agg, cores)
}

/// `/proc/meminfo` values in bytes.
fn parse_meminfo(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let mut it = rest.split_ascii_whitespace();
            let v: u64 = it.next()?.parse().ok()?;
            let mult = if it.next() == Some("kB") { 1024 } else { 1 };
            Some((k.trim(), v.saturating_mul(mult)))
        })
        .collect()
}

/// Decodes the octal escapes of `/proc/mounts` fields (`\040` is a space).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Filesystem types that never hold disk data, used when `/proc/filesystems` cannot be read.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "overlay",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "autofs",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "nsfs",
    "rpc_pipefs",
    "squashfs",
    "ramfs",
    "efivarfs",
    "selinuxfs",
];

/// A filesystem to report: device, mount point, type.
#[derive(Clone, Debug, PartialEq)]
struct Mount {
    device: String,
    point: String,
}

/// Physical filesystems from a mounts file, one per device (its first mount point), like psutil's
/// `disk_partitions(all=False)` that the Datadog disk check uses.
fn physical_mounts(mounts: &str, filesystems: Option<&str>) -> Vec<Mount> {
    let nodev: Option<HashSet<&str>> = filesystems.map(|f| {
        f.lines()
            .filter_map(|l| l.strip_prefix("nodev"))
            .map(str::trim)
            .collect()
    });
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in mounts.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(dev), Some(point), Some(fstype)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let pseudo =
            PSEUDO_FS.contains(&fstype) || nodev.as_ref().is_some_and(|n| n.contains(fstype));
        if pseudo || dev == "none" {
            continue;
        }
        if out.len() >= MAX_DEVICES || !seen.insert(dev.to_string()) {
            continue;
        }
        out.push(Mount {
            device: unescape_mount(dev),
            point: unescape_mount(point),
        });
    }
    out
}

/// (total, used, free) bytes of the filesystem at `path`, as psutil computes them.
fn statvfs(path: &Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized, zero-initialised statvfs that the
    // call fills; we read it only when the call succeeded.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    let frsize = st.f_frsize as u64;
    let total = (st.f_blocks as u64).saturating_mul(frsize);
    let used = (st.f_blocks as u64)
        .saturating_sub(st.f_bfree as u64)
        .saturating_mul(frsize);
    let free = (st.f_bavail as u64).saturating_mul(frsize);
    Some((total, used, free))
}

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
        let none: &[String] = &[];
        // CPU
        if let Some(text) = self.read("stat") {
            let (cpu, cores) = parse_stat(&text);
            if cores > 0 {
                self.gauge(&mut out, "system.cpu.num_cores", none, now, cores as f64);
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
                        self.gauge(&mut out, n, none, now, v);
                    }
                }
            }
            if cpu.is_some() {
                self.prev_cpu = cpu;
            }
            // Load
            if let Some(load) = self.read("loadavg") {
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
                        self.gauge(&mut out, n, none, now, v[i]);
                        if cores > 0 {
                            self.gauge(&mut out, nn, none, now, v[i] / cores as f64);
                        }
                    }
                }
            }
        }
        // Memory and swap
        if let Some(text) = self.read("meminfo") {
            let m = parse_meminfo(&text);
            if let (Some(&total), Some(&free)) = (m.get("MemTotal"), m.get("MemFree")) {
                let usable = m.get("MemAvailable").copied().unwrap_or_else(|| {
                    free + m.get("Buffers").copied().unwrap_or(0)
                        + m.get("Cached").copied().unwrap_or(0)
                });
                self.gauge(&mut out, "system.mem.total", none, now, total as f64 / MIB);
                self.gauge(&mut out, "system.mem.free", none, now, free as f64 / MIB);
                self.gauge(
                    &mut out,
                    "system.mem.used",
                    none,
                    now,
                    total.saturating_sub(free) as f64 / MIB,
                );
                self.gauge(
                    &mut out,
                    "system.mem.usable",
                    none,
                    now,
                    usable as f64 / MIB,
                );
                if total > 0 {
                    self.gauge(
                        &mut out,
                        "system.mem.pct_usable",
                        none,
                        now,
                        usable as f64 / total as f64,
                    );
                }
                if let Some(&c) = m.get("Cached") {
                    self.gauge(&mut out, "system.mem.cached", none, now, c as f64 / MIB);
                }
                if let Some(&b) = m.get("Buffers") {
                    self.gauge(&mut out, "system.mem.buffered", none, now, b as f64 / MIB);
                }
            }
            if let (Some(&st), Some(&sf)) = (m.get("SwapTotal"), m.get("SwapFree")) {
                self.gauge(&mut out, "system.swap.total", none, now, st as f64 / MIB);
                self.gauge(&mut out, "system.swap.free", none, now, sf as f64 / MIB);
                self.gauge(
                    &mut out,
                    "system.swap.used",
                    none,
                    now,
                    st.saturating_sub(sf) as f64 / MIB,
                );
                if st > 0 {
                    self.gauge(
                        &mut out,
                        "system.swap.pct_free",
                        none,
                        now,
                        sf as f64 / st as f64,
                    );
                }
            }
        }
        // Uptime
        if let Some(up) = self.read("uptime") {
            if let Some(v) = up
                .split_ascii_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
            {
                self.gauge(&mut out, "system.uptime", none, now, v);
            }
        }
        // Disks
        if let Some(mounts) = self.read_init("mounts") {
            let fs = self.read("filesystems");
            for m in physical_mounts(&mounts, fs.as_deref()) {
                let Some((total, used, free)) = self.stat_path(&m.point) else {
                    continue;
                };
                if total == 0 {
                    continue;
                }
                let tags = [format!("device:{}", m.device)];
                self.gauge(
                    &mut out,
                    "system.disk.total",
                    &tags,
                    now,
                    total as f64 / KIB,
                );
                self.gauge(&mut out, "system.disk.used", &tags, now, used as f64 / KIB);
                self.gauge(&mut out, "system.disk.free", &tags, now, free as f64 / KIB);
                if used + free > 0 {
                    self.gauge(
                        &mut out,
                        "system.disk.in_use",
                        &tags,
                        now,
                        used as f64 / (used + free) as f64,
                    );
                }
            }
        }
        // Network
        if let Some(text) = self.read_init("net/dev") {
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
                        self.gauge(
                            &mut out,
                            "system.net.bytes_rcvd",
                            &tags,
                            now,
                            (d.rx_bytes - prx) as f64 / secs,
                        );
                        self.gauge(
                            &mut out,
                            "system.net.bytes_sent",
                            &tags,
                            now,
                            (d.tx_bytes - ptx) as f64 / secs,
                        );
                    }
                }
                next.insert(d.iface, (d.rx_bytes, d.tx_bytes));
            }
            self.prev_net = next;
            self.prev_net_at = Some(at);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &[Series], name: &str, tag: Option<&str>) -> Option<f64> {
        s.iter()
            .find(|x| &*x.name == name && tag.is_none_or(|t| x.tags.iter().any(|y| &**y == t)))
            .map(|x| x.points[0].1)
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const NET_HDR: &str = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n";

    #[test]
    fn units_and_deltas_from_a_recorded_proc_tree() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(p, "stat", "cpu  100 0 50 800 10 0 0 0 0 0\ncpu0 50 0 25 400 5 0 0 0 0 0\ncpu1 50 0 25 400 5 0 0 0 0 0\nintr 1\n");
        write(p, "loadavg", "1.00 0.50 0.25 1/100 42\n");
        write(
            p,
            "meminfo",
            "MemTotal:        8388608 kB\nMemFree:         2097152 kB\nMemAvailable:    4194304 kB\nBuffers: 1024 kB\nCached: 2048 kB\nSwapTotal:       1048576 kB\nSwapFree:         524288 kB\n",
        );
        write(p, "uptime", "1234.56 100.0\n");
        write(p, "1/net/dev", &format!("{NET_HDR}    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"));
        // The mount table names the tempdir itself so statvfs has a real filesystem to read.
        write(
            p,
            "1/mounts",
            &format!(
                "/dev/testdisk {} ext4 rw 0 0\nproc /proc proc rw 0 0\n",
                p.display()
            ),
        );
        write(p, "filesystems", "nodev\tproc\n\text4\n");
        // Like the real $HOST_PROC/1/root: init's view of the filesystem.
        std::os::unix::fs::symlink("/", p.join("1/root")).unwrap();
        let mut h = HostCollector::new(p.to_path_buf(), "/nonexistent".into());
        let first = h.collect(1000);
        assert_eq!(value(&first, "system.cpu.num_cores", None), Some(2.0));
        assert_eq!(
            value(&first, "system.cpu.user", None),
            None,
            "no cpu percentages on the first call"
        );
        assert_eq!(value(&first, "system.load.1", None), Some(1.0));
        assert_eq!(value(&first, "system.load.norm.1", None), Some(0.5));
        assert_eq!(value(&first, "system.mem.total", None), Some(8192.0));
        assert_eq!(value(&first, "system.mem.used", None), Some(6144.0));
        assert_eq!(value(&first, "system.mem.usable", None), Some(4096.0));
        assert_eq!(value(&first, "system.mem.pct_usable", None), Some(0.5));
        assert_eq!(value(&first, "system.swap.used", None), Some(512.0));
        assert_eq!(value(&first, "system.uptime", None), Some(1234.56));
        let total = value(&first, "system.disk.total", Some("device:/dev/testdisk"))
            .expect("disk of the tempdir");
        let (t, _, _) = statvfs(p).unwrap();
        assert_eq!(total, t as f64 / 1024.0);
        let via_root = HostCollector::new(p.to_path_buf(), "/nonexistent".into())
            .with_host_root("/".into())
            .collect(1000);
        assert_eq!(
            value(&via_root, "system.disk.total", Some("device:/dev/testdisk")),
            Some(total)
        );
        let in_use = value(&first, "system.disk.in_use", Some("device:/dev/testdisk")).unwrap();
        assert!((0.0..=1.0).contains(&in_use));
        assert!(first
            .iter()
            .all(|s| s.kind == SeriesKind::Gauge && s.interval == 0 && s.host.is_empty()));
        assert!(!first
            .iter()
            .any(|s| s.tags.iter().any(|t| &**t == "device:proc")));

        write(
            p,
            "stat",
            "cpu  160 0 70 900 20 0 0 10 0 0\ncpu0 1\ncpu1 1\n",
        );
        write(
            p,
            "1/net/dev",
            &format!("{NET_HDR}  eth0: 3000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"),
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        let second = h.collect(1010);
        // deltas: user 60, system 20, idle 100, iowait 10, steal 10 → total 200
        assert_eq!(value(&second, "system.cpu.user", None), Some(30.0));
        assert_eq!(value(&second, "system.cpu.system", None), Some(10.0));
        assert_eq!(value(&second, "system.cpu.idle", None), Some(50.0));
        assert_eq!(value(&second, "system.cpu.iowait", None), Some(5.0));
        assert_eq!(value(&second, "system.cpu.stolen", None), Some(5.0));
        let rx = value(&second, "system.net.bytes_rcvd", Some("device:eth0")).unwrap();
        assert!(
            rx > 0.0 && rx <= 2000.0 / 0.2,
            "2000 bytes over ≥0.2 s: {rx}"
        );
        assert_eq!(
            value(&second, "system.net.bytes_sent", Some("device:eth0")),
            Some(0.0)
        );
        assert!(!second
            .iter()
            .any(|s| s.tags.iter().any(|t| &**t == "device:lo")));
    }

    #[test]
    fn garbage_files_give_no_metrics_and_no_panic() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for f in [
            "stat",
            "loadavg",
            "meminfo",
            "uptime",
            "1/net/dev",
            "1/mounts",
            "filesystems",
        ] {
            write(p, f, "\u{0}garbage: x y z\n\\0\\\ncpu x\n:::\n");
        }
        let mut h = HostCollector::new(p.to_path_buf(), p.to_path_buf());
        assert!(h.collect(1).is_empty());
        assert!(h.collect(2).is_empty());
        assert!(
            HostCollector::new("/nonexistent".into(), "/nonexistent".into())
                .collect(1)
                .is_empty()
        );
    }

    #[test]
    fn mounts_are_unescaped_and_deduplicated() {
        let m = "/dev/sda1 / ext4 rw 0 0\n/dev/sda1 /var/lib/docker ext4 rw 0 0\n/dev/sdb /mnt/my\\040disk xfs rw 0 0\ntmpfs /run tmpfs rw 0 0\noverlay /x overlay rw 0 0\n";
        let v = physical_mounts(m, Some("nodev\ttmpfs\nnodev\toverlay\n\text4\n\txfs\n"));
        assert_eq!(
            v,
            vec![
                Mount {
                    device: "/dev/sda1".into(),
                    point: "/".into()
                },
                Mount {
                    device: "/dev/sdb".into(),
                    point: "/mnt/my disk".into()
                },
            ]
        );
        assert_eq!(physical_mounts(m, None).len(), 2);
        assert_eq!(
            unescape_mount("a\\é\\04"),
            "a\\é\\04",
            "no panic on odd escapes"
        );
    }

    #[test]
    fn real_proc_of_this_machine() {
        let mut h = HostCollector::new("/proc".into(), "/sys".into());
        let _ = h.collect(1);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let s = h.collect(2);
        let total = value(&s, "system.mem.total", None).expect("mem total");
        assert!(total > 64.0, "MiB: {total}");
        let cpu: f64 = ["user", "system", "idle", "iowait", "stolen"]
            .iter()
            .filter_map(|n| value(&s, &format!("system.cpu.{n}"), None))
            .sum();
        assert!(
            (99.0..=101.0).contains(&cpu),
            "cpu percentages add up to 100: {cpu}"
        );
        assert!(value(&s, "system.uptime", None).unwrap() > 0.0);
        assert!(
            s.iter().any(|x| &*x.name == "system.disk.total"),
            "at least one disk"
        );
    }
}
