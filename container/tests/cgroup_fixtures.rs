//! cgroup v2 (most ECS hosts) from fixture trees: this machine's Docker runs cgroup v1, which the Docker tests
//! cover for real.

use kelpie_container::cgroup::{self, CgroupPaths};
use kelpie_container::OriginResolver;
use std::path::PathBuf;

const ID1: &str = "3f1c2b7a9d8e4f6051a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
const ID2: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807f6e5d4c3b2a1908f7e6d5c4b";
const TASK: &str = "6c1a5e0f2b3d4a89b7c6d5e4f3a2b1c0";

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v2"))
}

#[test]
fn v2_is_detected_and_paths_resolve_from_the_pid_in_both_layouts() {
    let (proc_, sys) = (root().join("proc"), root().join("sys"));
    assert!(cgroup::is_v2(&sys));
    let p = cgroup::resolve(&proc_, &sys, Some(4242), ID1).expect("systemd layout");
    assert_eq!(
        p,
        CgroupPaths::V2(sys.join(format!("fs/cgroup/system.slice/docker-{ID1}.scope")))
    );
    let p = cgroup::resolve(&proc_, &sys, Some(5151), ID2).expect("ECS layout");
    assert_eq!(
        p,
        CgroupPaths::V2(sys.join(format!("fs/cgroup/ecs/{TASK}/{ID2}")))
    );
    // The process is gone: the id alone finds the usual systemd layout.
    let p = cgroup::resolve(&proc_, &sys, Some(999_999), ID1).expect("fallback by id");
    assert!(matches!(p, CgroupPaths::V2(_)));
    assert_eq!(cgroup::resolve(&proc_, &sys, None, &"0".repeat(64)), None);
}

#[test]
fn v2_files_give_datadog_units() {
    let (proc_, sys) = (root().join("proc"), root().join("sys"));
    let p = cgroup::resolve(&proc_, &sys, Some(4242), ID1).unwrap();
    let s = cgroup::read_stats(&p);
    assert_eq!(s.cpu_total_ns, Some(123_456_789_000));
    assert_eq!(s.cpu_user_ns, Some(100_000_000_000));
    assert_eq!(s.cpu_system_ns, Some(23_456_789_000));
    assert_eq!(s.throttled_periods, Some(12));
    assert_eq!(s.throttled_ns, Some(345_678_000));
    // runc maps shares to weight as 1 + (shares - 2) * 9999 / 262142; we invert it.
    assert_eq!(s.cpu_shares, Some(2597), "cpu.weight 100");
    assert_eq!(s.mem_usage, Some(157_286_400));
    assert_eq!(s.mem_limit, None, "memory.max = max: no limit");
    assert_eq!(s.mem_rss, Some(104_857_600), "rss is anon");
    assert_eq!(s.mem_cache, Some(41_943_040), "cache is file");
    assert_eq!(
        s.mem_working_set,
        Some(157_286_400 - 20_971_520),
        "usage - inactive_file"
    );
    assert_eq!(s.io_read_bytes, Some(4_097_000));
    assert_eq!(s.io_write_bytes, Some(8_192_000));
    let ecs = cgroup::read_stats(&cgroup::resolve(&proc_, &sys, Some(5151), ID2).unwrap());
    assert_eq!(ecs.mem_limit, Some(536_870_912));
}

#[test]
fn origin_resolves_v2_pids() {
    let r = OriginResolver::new(root().join("proc"), None);
    r.insert(ID2, &["task_family:web".to_string()]);
    assert_eq!(r.container_id_for_pid(4242).as_deref(), Some(ID1));
    assert_eq!(&*r.tags_for_pid(5151).unwrap()[0], "task_family:web");
    assert!(
        r.tags_for_pid(4242).is_none(),
        "known pid, unknown container"
    );
}
