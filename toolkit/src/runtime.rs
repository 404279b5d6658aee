//! The process's runtime numbers, sent on a ticker as `runtime.rust.*` gauges.
//!
//! Names follow Datadog's runtime metrics of other languages (`runtime.python.cpu.time.user`,
//! `runtime.python.mem.rss`, `runtime.python.thread_count`, `runtime.go.num_goroutine`, …) with `rust` as the
//! language part, and every point carries `language:rust` besides the service's own tags:
//!
//! | metric | unit | meaning |
//! |---|---|---|
//! | `runtime.rust.cpu.time.user` | seconds | user CPU time used since the previous tick |
//! | `runtime.rust.cpu.time.sys` | seconds | system CPU time used since the previous tick |
//! | `runtime.rust.cpu.percent` | percent of one core | (user + sys) / wall time since the previous tick |
//! | `runtime.rust.mem.rss` | bytes | resident set size |
//! | `runtime.rust.mem.virtual` | bytes | virtual memory size |
//! | `runtime.rust.thread_count` | threads | OS threads of the process |
//! | `runtime.rust.fd_count` | descriptors | open file descriptors |
//! | `runtime.rust.tokio.workers` | threads | worker threads of the Tokio runtime `init` was called in |
//! | `runtime.rust.tokio.alive_tasks` | tasks | tasks alive in that runtime |
//! | `runtime.rust.tokio.global_queue_depth` | tasks | tasks waiting in its global queue |
//!
//! The CPU numbers need two readings, so they start with the second tick. The `tokio` ones are sent only when
//! `init` ran inside a Tokio runtime.

use std::time::Instant;

/// One reading of `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    /// User CPU seconds since the process started.
    pub cpu_user_s: f64,
    /// System CPU seconds since the process started.
    pub cpu_sys_s: f64,
    pub rss_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    pub open_fds: u64,
}

/// Reads `/proc/self/{stat,status,fd}`. `None` where `/proc` is missing or unreadable (not Linux, or a sandbox).
pub fn read_process() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let ticks = clock_ticks_per_second();
    let (utime, stime) = parse_stat_cpu(&stat)?;
    let (rss_kib, vm_kib, threads) = parse_status(&status)?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Some(ProcessSample {
        cpu_user_s: utime as f64 / ticks,
        cpu_sys_s: stime as f64 / ticks,
        rss_bytes: rss_kib.saturating_mul(1024),
        virtual_bytes: vm_kib.saturating_mul(1024),
        threads,
        open_fds,
    })
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `utime` and `stime` (fields 14 and 15) of `/proc/<pid>/stat`, in clock ticks. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu(stat: &str) -> Option<(u64, u64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // `after` starts at field 3 (state); utime is field 14 → index 11.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// `VmRSS` (KiB), `VmSize` (KiB) and `Threads` of `/proc/<pid>/status`.
pub fn parse_status(status: &str) -> Option<(u64, u64, u64)> {
    let mut rss = None;
    let mut vm = None;
    let mut threads = None;
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = || -> Option<u64> { value.split_ascii_whitespace().next()?.parse().ok() };
        match key {
            "VmRSS" => rss = number(),
            "VmSize" => vm = number(),
            "Threads" => threads = number(),
            _ => {}
        }
    }
    Some((rss.unwrap_or(0), vm.unwrap_or(0), threads?))
}

/// Numbers of a Tokio runtime (stable `RuntimeMetrics` fields only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokioSample {
    pub workers: u64,
    pub alive_tasks: u64,
    pub global_queue_depth: u64,
}

pub fn read_tokio(handle: &tokio::runtime::Handle) -> TokioSample {
    let m = handle.metrics();
    TokioSample {
        workers: m.num_workers() as u64,
        alive_tasks: m.num_alive_tasks() as u64,
        global_queue_depth: m.global_queue_depth() as u64,
    }
}

/// Gauges to send for one tick: `(name, value)`.
pub type Points = Vec<(&'static str, f64)>;

/// Turns successive readings into the gauges of the table above.
#[derive(Debug, Default)]
pub struct RuntimeCollector {
    previous: Option<(Instant, ProcessSample)>,
}

impl RuntimeCollector {
    pub fn collect(
        &mut self,
        now: Instant,
        process: Option<ProcessSample>,
        tokio: Option<TokioSample>,
    ) -> Points {
        let mut points = Vec::with_capacity(10);
        if let Some(p) = process {
            if let Some((then, prev)) = self.previous {
                let user = (p.cpu_user_s - prev.cpu_user_s).max(0.0);
                let sys = (p.cpu_sys_s - prev.cpu_sys_s).max(0.0);
                points.push(("runtime.rust.cpu.time.user", user));
                points.push(("runtime.rust.cpu.time.sys", sys));
                let wall = now.saturating_duration_since(then).as_secs_f64();
                if wall > 0.0 {
                    points.push(("runtime.rust.cpu.percent", (user + sys) / wall * 100.0));
                }
            }
            points.push(("runtime.rust.mem.rss", p.rss_bytes as f64));
            points.push(("runtime.rust.mem.virtual", p.virtual_bytes as f64));
            points.push(("runtime.rust.thread_count", p.threads as f64));
            points.push(("runtime.rust.fd_count", p.open_fds as f64));
            self.previous = Some((now, p));
        }
        if let Some(t) = tokio {
            points.push(("runtime.rust.tokio.workers", t.workers as f64));
            points.push(("runtime.rust.tokio.alive_tasks", t.alive_tasks as f64));
            points.push((
                "runtime.rust.tokio.global_queue_depth",
                t.global_queue_depth as f64,
            ));
        }
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stat_with_spaces_in_the_name() {
        let stat =
            "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 \
                    100 123456 789 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat), Some((250, 75)));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tx\nVmSize:\t  20480 kB\nVmRSS:\t    1024 kB\nThreads:\t7\n";
        assert_eq!(parse_status(status), Some((1024, 20480, 7)));
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[test]
    fn this_process_reads() {
        let p = read_process().expect("/proc/self is readable on Linux");
        assert!(p.rss_bytes > 0);
        assert!(p.threads >= 1);
        assert!(
            p.open_fds >= 3,
            "stdin, stdout, stderr at least: {}",
            p.open_fds
        );
    }

    #[test]
    fn cpu_deltas_start_on_the_second_tick() {
        let mut c = RuntimeCollector::default();
        let t0 = Instant::now();
        let s = |u: f64, sy: f64| ProcessSample {
            cpu_user_s: u,
            cpu_sys_s: sy,
            rss_bytes: 4096,
            virtual_bytes: 8192,
            threads: 3,
            open_fds: 5,
        };
        let first = c.collect(t0, Some(s(1.0, 0.5)), None);
        assert!(!first.iter().any(|(n, _)| n.starts_with("runtime.rust.cpu")));
        assert!(first.contains(&("runtime.rust.mem.rss", 4096.0)));
        let second = c.collect(
            t0 + Duration::from_secs(2),
            Some(s(2.0, 0.75)),
            Some(TokioSample {
                workers: 2,
                alive_tasks: 5,
                global_queue_depth: 0,
            }),
        );
        assert!(second.contains(&("runtime.rust.cpu.time.user", 1.0)));
        assert!(second.contains(&("runtime.rust.cpu.time.sys", 0.25)));
        assert!(second.contains(&("runtime.rust.cpu.percent", 62.5)));
        assert!(second.contains(&("runtime.rust.tokio.workers", 2.0)));
        assert!(second.contains(&("runtime.rust.tokio.alive_tasks", 5.0)));
    }
}
