//! The container collector against the real Docker engine of this machine (never mocked). Each test starts
//! its own labelled containers from the locally built `kelpie-test/tool` image and removes them on drop.

mod common;

use common::*;
use kelpie_container::{Containers, PointKind};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// utime + stime of a host process, in clock ticks (USER_HZ = 100).
fn proc_cpu_ticks(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    let after = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_burner_reads_about_one_core_with_datadog_tags() {
    if !docker_ready() {
        return;
    }
    let c = run("kelpie-burn", &[], &["burn"]);
    let pid = pid_of(&c.id);
    let (tx, _rx) = mpsc::channel(64);
    let cs = Containers::start(config("test-host"), tx)
        .await
        .expect("start");
    let name_tag = format!("container_name:{}", c.name);
    let first = cs.collect().await.expect("collect");
    assert!(
        find(&first, "docker.mem.rss", &name_tag).is_some(),
        "gauges on the first call"
    );
    assert!(
        find(&first, "docker.cpu.usage", &name_tag).is_none(),
        "no rate on the first call"
    );
    let t0 = Instant::now();
    let ticks0 = proc_cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ticks1 = proc_cpu_ticks(pid);
    let wall = t0.elapsed().as_secs_f64();
    let second = cs.collect().await.expect("collect");
    let usage = find(&second, "docker.cpu.usage", &name_tag).expect("docker.cpu.usage");
    assert_eq!(usage.kind, PointKind::Rate);
    // The kernel's own per-process accounting, measured over (almost) the same window.
    let procfs_pct = (ticks1 - ticks0) as f64 / wall; // ticks/s at 100 Hz = percent of one core
    eprintln!(
        "docker.cpu.usage = {:.1}, /proc/<pid>/stat says {:.1}",
        usage.value, procfs_pct
    );
    assert!(
        usage.value > 10.0 && usage.value <= 105.0,
        "a spinning process uses up to one core (less when the machine is busy): {}",
        usage.value
    );
    assert!(
        (usage.value - procfs_pct).abs() < 15.0,
        "{} vs {procfs_pct}",
        usage.value
    );
    let user = find(&second, "docker.cpu.user", &name_tag)
        .expect("docker.cpu.user")
        .value;
    assert!(
        user > usage.value * 0.6,
        "a busy loop is user time: user {user} of {}",
        usage.value
    );
    for tag in [
        format!("container_id:{}", c.id),
        "image_name:kelpie-test/tool".to_string(),
        "image_tag:latest".to_string(),
        "short_image:tool".to_string(),
        "docker_image:kelpie-test/tool:latest".to_string(),
        "runtime:docker".to_string(),
    ] {
        assert!(
            usage.tags.contains(&tag),
            "missing {tag} in {:?}",
            usage.tags
        );
    }
    let up = find(&second, "docker.uptime", &name_tag)
        .expect("docker.uptime")
        .value;
    assert!((0.0..120.0).contains(&up), "uptime {up}");
    let running = second
        .iter()
        .find(|p| {
            p.name == "docker.containers.running"
                && p.tags.iter().any(|t| t == "image_name:kelpie-test/tool")
        })
        .expect("docker.containers.running for the test image");
    assert!(running.value >= 1.0);
    let total = second
        .iter()
        .find(|p| p.name == "docker.containers.running.total")
        .expect("total");
    assert!(total.value >= running.value);
    assert!(cs.status().running >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_holder_rss_matches_its_allocation() {
    if !docker_ready() {
        return;
    }
    const MIB: u64 = 96;
    let c = run(
        "kelpie-hold",
        &["--memory", "256m"],
        &["hold", &MIB.to_string()],
    );
    wait_logs(&c.id, "ready", Duration::from_secs(20));
    let (tx, _rx) = mpsc::channel(64);
    let cs = Containers::start(config("test-host"), tx)
        .await
        .expect("start");
    let points = cs.collect().await.expect("collect");
    let tag = format!("container_name:{}", c.name);
    let rss = find(&points, "docker.mem.rss", &tag)
        .expect("docker.mem.rss")
        .value;
    let want = (MIB << 20) as f64;
    eprintln!("docker.mem.rss = {rss} bytes, allocated {want}");
    assert!(
        (rss - want).abs() / want < 0.10,
        "rss {rss} vs allocated {want}"
    );
    let limit = find(&points, "docker.mem.limit", &tag)
        .expect("docker.mem.limit")
        .value;
    assert_eq!(limit, (256u64 << 20) as f64);
    let in_use = find(&points, "docker.mem.in_use", &tag)
        .expect("docker.mem.in_use")
        .value;
    assert!(in_use > 0.3 && in_use < 0.5, "{in_use} ≈ 96/256");
    let ws = find(&points, "docker.mem.working_set", &tag)
        .expect("working set")
        .value;
    assert!(ws >= rss * 0.9, "working set {ws} includes rss {rss}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_3_gives_exactly_one_error_event_and_exit_0_none() {
    if !docker_ready() {
        return;
    }
    let (tx, mut rx) = mpsc::channel(256);
    let cs = Containers::start(config("test-host"), tx)
        .await
        .expect("start");
    let bad = run("kelpie-exit3", &[], &["exit", "3", "300"]);
    let good = run("kelpie-exit0", &[], &["exit", "0", "300"]);
    let bad_tag = format!("container_name:{}", bad.name);
    let good_tag = format!("container_name:{}", good.name);
    let ev = wait_event(&mut rx, Duration::from_secs(20), |e| has_tag(e, &bad_tag))
        .await
        .expect("error event");
    assert_eq!(ev.alert_type, "error");
    assert_eq!(ev.source_type_name, "docker");
    assert!(ev.title.contains("exited with code 3"), "{}", ev.title);
    assert!(
        has_tag(&ev, &format!("container_id:{}", bad.id)),
        "{:?}",
        ev.tags
    );
    assert!(has_tag(&ev, "image_name:kelpie-test/tool"));
    assert_eq!(
        ev.aggregation_key.as_deref(),
        Some("docker:kelpie-test/tool")
    );
    let more = collect_events(&mut rx, Duration::from_secs(3), |e| {
        has_tag(e, &bad_tag) || has_tag(e, &good_tag)
    })
    .await;
    assert!(
        more.is_empty(),
        "exactly one event for exit 3 and none for exit 0: {more:?}"
    );
    assert!(cs.status().events_sent >= 1);
    assert_eq!(cs.status().events_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_maps_a_real_container_pid_to_its_id_and_tags() {
    if !docker_ready() {
        return;
    }
    let c = run(
        "kelpie-origin",
        &["--label", "com.datadoghq.tags.service=origin-svc"],
        &["sleep"],
    );
    let pid = pid_of(&c.id);
    let (tx, _rx) = mpsc::channel(64);
    let cs = Containers::start(config("test-host"), tx)
        .await
        .expect("start");
    let origin = cs.origin();
    assert_eq!(
        origin.container_id_for_pid(pid).as_deref(),
        Some(c.id.as_str())
    );
    let tags = origin
        .tags_for_pid(pid)
        .expect("tags for the container's pid");
    assert!(
        tags.contains(&format!("container_name:{}", c.name).into()),
        "{tags:?}"
    );
    assert!(tags.contains(&"service:origin-svc".into()), "{tags:?}");
    assert_eq!(origin.tags_for_container_id(&c.id).as_deref(), Some(&*tags));
    // Our own process is not in a container.
    assert!(origin.tags_for_pid(std::process::id() as i32).is_none());
    // From a plain thread, as the DogStatsD readers use it.
    let o2 = origin.clone();
    let id2 = c.id.clone();
    assert!(
        std::thread::spawn(move || o2.tags_for_container_id(&id2).is_some())
            .join()
            .unwrap()
    );
    // Death invalidates the cache.
    let id = c.id.clone();
    drop(c);
    let start = Instant::now();
    while origin.tags_for_container_id(&id).is_some() && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        origin.tags_for_container_id(&id).is_none(),
        "tags forgotten after the container died"
    );
    assert!(origin.tags_for_pid(pid).is_none());
}

/// A container sends DogStatsD frames over a Unix stream socket mounted into it; SO_PEERCRED gives its pid,
/// the resolver its tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_over_a_mounted_unix_socket_get_the_sender_tags() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    if !docker_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("dsd.socket");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let (tx, _rx) = mpsc::channel(64);
    let cs = Containers::start(config("test-host"), tx)
        .await
        .expect("start");
    let mount = format!("{}:/sock", dir.path().display());
    let c = run(
        "kelpie-sender",
        &["-v", &mount],
        &["send", "/sock/dsd.socket", "app.hits:1|c|#x:y"],
    );
    let (mut conn, _) = tokio::task::spawn_blocking(move || listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a properly sized ucred.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    let mut frame = [0u8; 4 + 17];
    conn.read_exact(&mut frame).unwrap();
    assert_eq!(&frame[4..], b"app.hits:1|c|#x:y");
    // The container may be tracked through its start event or, if not yet, through the resolver's request.
    let origin = cs.origin();
    let start = Instant::now();
    let mut tags = None;
    while tags.is_none() && start.elapsed() < Duration::from_secs(10) {
        tags = origin.tags_for_pid(cred.pid);
        if tags.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let tags = tags.expect("tags for the sending container");
    assert!(
        tags.contains(&format!("container_id:{}", c.id).into()),
        "{tags:?}"
    );
    assert!(
        tags.contains(&format!("container_name:{}", c.name).into()),
        "{tags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_coming_and_going_mid_interval_leave_nothing_behind() {
    if !docker_ready() {
        return;
    }
    let (tx, _rx) = mpsc::channel(256);
    let cs = Containers::start(config("test-host"), tx)
        .await
        .expect("start");
    let mut ctrs = Vec::new();
    for i in 0..12 {
        if i % 2 == 0 {
            ctrs.push(run("kelpie-churn", &[], &["exit", "0", "700"]));
        }
        cs.collect()
            .await
            .expect("collect never fails when containers vanish");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Once they have all exited, none of them is tracked any more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let points = cs.collect().await.expect("collect");
    for c in &ctrs {
        let tag = format!("container_name:{}", c.name);
        assert!(
            points.iter().all(|p| !p.tags.contains(&tag)),
            "{} still reported",
            c.name
        );
        assert!(cs.origin().tags_for_container_id(&c.id).is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kill_gives_one_oom_error_event() {
    if !docker_ready() {
        return;
    }
    let (tx, mut rx) = mpsc::channel(256);
    let _cs = Containers::start(config("test-host"), tx)
        .await
        .expect("start");
    // 64 MiB in a 16 MiB container without swap: the kernel OOM-kills it. The allocation waits a second:
    // containerd's shim starts watching the container's cgroup for OOM only after the process started, and an
    // OOM before that is never reported by Docker (no `oom` event, `State.OOMKilled` false), to anyone. When
    // Docker itself recorded no OOM, a second container is tried; an OOM Docker recorded must be reported.
    let mut found = None;
    for attempt in 1..=2 {
        let c = run(
            "kelpie-oom",
            &["--memory", "16m", "--memory-swap", "16m"],
            &["hold", "64", "1000"],
        );
        let tag = format!("container_name:{}", c.name);
        let ev = wait_event(&mut rx, Duration::from_secs(20), |e| {
            has_tag(e, &tag) && e.title.contains("out of memory")
        })
        .await;
        let (oom_killed, exit) = (
            inspect(&c.id, "{{.State.OOMKilled}}"),
            inspect(&c.id, "{{.State.ExitCode}}"),
        );
        match ev {
            Some(ev) => {
                found = Some((c, tag, ev));
                break;
            }
            None if oom_killed == "true" || attempt == 2 => {
                panic!("no oom event (attempt {attempt}); Docker says OOMKilled={oom_killed} ExitCode={exit}")
            }
            None => eprintln!(
                "Docker recorded no OOM for {} (exit {exit}); trying again",
                c.name
            ),
        }
    }
    let (c, tag, oom) = found.expect("an oom event or a panic above");
    assert_eq!(oom.alert_type, "error");
    assert!(has_tag(&oom, &format!("container_id:{}", c.id)));
    let rest = collect_events(&mut rx, Duration::from_secs(3), |e| has_tag(e, &tag)).await;
    assert!(
        rest.iter().all(|e| !e.title.contains("out of memory")),
        "one oom event only: {rest:?}"
    );
    assert!(
        rest.len() <= 1,
        "at most the die (exit 137) event follows: {rest:?}"
    );
}

/// The Datadog Agent's tag and filter options on real containers: labels and environment variables become
/// tags (`+key` = high cardinality, kept out of low-cardinality origin tags), the `com.datadoghq.ad.tags`
/// label adds its tags, and a container matching `container_exclude` has no docker.* metrics (yet its origin
/// tags are still known).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_env_and_ad_tags_become_tags_and_excluded_containers_have_no_metrics() {
    use kelpie_container::filter::ContainerFilter;
    use kelpie_container::tags::{TagCardinality, TagRules};
    if !docker_ready() {
        return;
    }
    let tagged = run(
        "kelpie-tagged",
        &[
            "--label",
            "team=payments",
            "--label",
            "build=1234",
            "--label",
            r#"com.datadoghq.ad.tags=["tier:frontend"]"#,
            "-e",
            "DEPLOY_COLOR=blue",
        ],
        &["sleep"],
    );
    let skipped = run("kelpie-skipme", &[], &["sleep"]);
    let (tx, _rx) = mpsc::channel(64);
    let cfg = kelpie_container::ContainerConfig {
        origin_cardinality: TagCardinality::Low,
        tag_rules: TagRules {
            labels: vec![
                TagRules::rule("TEAM", "team"),
                TagRules::rule("build", "+build_id"),
            ],
            env: vec![TagRules::rule("deploy_color", "color")],
        },
        metrics_filter: ContainerFilter::new(&[], &["name:^kelpie-skipme-".to_string()], true)
            .unwrap(),
        ..config("test-host")
    };
    let cs = Containers::start(cfg, tx).await.expect("start");
    let points = cs.collect().await.expect("collect");
    let name_tag = format!("container_name:{}", tagged.name);
    let rss = find(&points, "docker.mem.rss", &name_tag).expect("docker.mem.rss of the tagged one");
    for t in [
        "team:payments",
        "build_id:1234",
        "tier:frontend",
        "color:blue",
    ] {
        assert!(
            rss.tags.iter().any(|x| x == t),
            "missing {t} in {:?}",
            rss.tags
        );
    }
    let skipped_tag = format!("container_name:{}", skipped.name);
    assert!(
        !points
            .iter()
            .any(|p| p.name.starts_with("docker.") && p.tags.contains(&skipped_tag)),
        "an excluded container's metrics were collected"
    );
    let origin = cs.origin();
    let low: Vec<String> = origin
        .tags_for_container_id(&tagged.id)
        .expect("origin tags of the tagged container")
        .iter()
        .map(|t| t.to_string())
        .collect();
    for t in [
        "team:payments",
        "tier:frontend",
        "color:blue",
        "short_image:tool",
    ] {
        assert!(low.contains(&t.to_string()), "missing {t} in {low:?}");
    }
    assert!(
        !low.iter()
            .any(|t| t.starts_with("build_id:") || t.starts_with("container_name:")),
        "high-cardinality tags at low: {low:?}"
    );
    assert!(origin.tags_for_container_id(&skipped.id).is_some());
    // Its cgroup directory's inode (what a client in a private cgroup namespace sends as `c:in-<inode>`)
    // names it.
    use std::os::unix::fs::MetadataExt;
    let cfg = config("x");
    let paths = kelpie_container::cgroup::resolve(
        &cfg.host_proc,
        &cfg.host_sys,
        Some(pid_of(&tagged.id)),
        &tagged.id,
    )
    .expect("the container's cgroup");
    let dir = match paths {
        kelpie_container::cgroup::CgroupPaths::V2(d) => d,
        kelpie_container::cgroup::CgroupPaths::V1 { memory, .. } => memory.expect("memory cgroup"),
    };
    let ino = std::fs::metadata(&dir).unwrap().ino();
    assert_eq!(
        origin.container_id_for_inode(ino).as_deref(),
        Some(tagged.id.as_str())
    );
}
