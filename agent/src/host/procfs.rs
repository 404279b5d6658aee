//! Readers of the host's `/proc` files and filesystems for [`super::HostCollector`]: `/proc/stat`,
//! `/proc/meminfo`, the mount table (physical filesystems only, as psutil) and `statvfs`. Pure parsing of
//! text the caller read, apart from `statvfs`, so each is tested on recorded files.

use super::MAX_DEVICES;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Cumulative CPU jiffies from the first line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuTimes {
    pub fn total(&self) -> u64 {
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
pub(super) fn parse_stat(text: &str) -> (Option<CpuTimes>, usize) {
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
pub(super) fn parse_meminfo(text: &str) -> HashMap<&str, u64> {
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
pub(super) fn unescape_mount(s: &str) -> String {
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
pub(super) struct Mount {
    pub device: String,
    pub point: String,
}

/// Physical filesystems from a mounts file, one per device (its first mount point), like psutil's
/// `disk_partitions(all=False)` that the Datadog disk check uses.
pub(super) fn physical_mounts(mounts: &str, filesystems: Option<&str>) -> Vec<Mount> {
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
pub(super) fn statvfs(path: &Path) -> Option<(u64, u64, u64)> {
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
