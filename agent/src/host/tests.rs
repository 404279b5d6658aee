use super::procfs::{unescape_mount, Mount};
use super::*;

fn value(s: &[Series], name: &str, tag: Option<&str>) -> Option<f64> {
    s.iter()
        .find(|x| &*x.name == name && tag.is_none_or(|t| x.tags.iter().any(|y| y == t)))
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
        .any(|s| s.tags.iter().any(|t| t == "device:proc")));

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
        .any(|s| s.tags.iter().any(|t| t == "device:lo")));
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
