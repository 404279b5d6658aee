//! Several hosts, end to end, on the real Docker engine (issue "Ship it", item 5). Three simulated hosts, each a
//! Docker network of its own with one agent container (`DD_HOSTNAME=host-a/b/c`, its own DogStatsD socket
//! volume) and one example-service container that can reach only its own agent; one stand-in connected to all
//! three networks. Checked: each host's service metrics and profiles arrive under that host only, each host's
//! `system.*` under its own name, and a deploy gives one event per host that saw it.
//!
//! The three "hosts" share this machine's Docker engine and `/proc`, so each agent sees every container (and
//! reports the same machine's numbers under its own name): what is per host here is the configuration and the
//! DogStatsD/profile traffic, which is exactly what must not cross.
//!
//! Skipped with a message without Docker (a failure under KELPIE_REQUIRE_DOCKER=1). Everything started is
//! removed on drop, also on failure.

mod e2e_support;

use e2e_support::*;

const REQUESTS: u32 = 600;
const HOSTS: [&str; 3] = ["host-a", "host-b", "host-c"];

#[test]
fn three_hosts_each_report_under_their_own_name_with_nothing_crossed() {
    if !ready() {
        return;
    }
    let mut c = Cleanup::default();
    let nets: Vec<String> = HOSTS
        .iter()
        .map(|h| c.network(&format!("net-{h}")))
        .collect();
    let vols: Vec<String> = HOSTS
        .iter()
        .map(|h| c.volume(&format!("dsd-{h}")))
        .collect();
    let (standin, intake) = Standin::start(&mut c, &nets[0]);
    for n in &nets[1..] {
        docker_ok(&["network", "connect", n, &standin]);
    }
    let agents: Vec<String> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, h)| {
            start_agent(
                &mut c,
                &format!("agent-{h}"),
                &nets[i],
                &vols[i],
                h,
                &standin,
            )
        })
        .collect();
    intake.wait(
        "system.* and datadog.agent.running under each host's name",
        |r| {
            HOSTS.iter().all(|h| {
                [
                    "system.cpu.user",
                    "system.mem.total",
                    "datadog.agent.running",
                ]
                .iter()
                .all(|n| r.find(n, &[]).iter().any(|s| s.host() == Some(*h)))
            })
        },
    );

    // One service per host. The one on host-a is an ECS task at revision 1; once every agent has seen it, the
    // one on host-b starts the same family at revision 2: a deploy that each agent sees (the engine is shared).
    let family = Cleanup::name("family");
    let fam = format!("com.amazonaws.ecs.task-definition-family={family}");
    let labels = |rev: &str| {
        vec![
            "-l".to_string(),
            fam.clone(),
            "-l".to_string(),
            format!("com.amazonaws.ecs.task-definition-version={rev}"),
        ]
    };
    let rev1 = labels("1");
    let rev1: Vec<&str> = rev1.iter().map(String::as_str).collect();
    let rev2 = labels("2");
    let rev2: Vec<&str> = rev2.iter().map(String::as_str).collect();
    let service = |h: &str| format!("e2e-{h}");
    let mut svcs = Vec::new();
    for (i, h) in HOSTS.iter().enumerate() {
        let extra: &[&str] = match i {
            0 => &rev1,
            1 => &rev2,
            _ => &[],
        };
        if i == 1 {
            let fam_tag = format!("task_family:{family}");
            intake.wait(
                "host-a's service tagged with its ECS task at revision 1",
                |r| {
                    !r.find("example.requests", &[&fam_tag, "task_version:1"])
                        .is_empty()
                },
            );
        }
        svcs.push(start_service(
            &mut c,
            &format!("svc-{h}"),
            Host {
                network: &nets[i],
                volume: &vols[i],
                agent: &agents[i],
            },
            &service(h),
            extra,
            REQUESTS,
        ));
    }

    let r = intake.wait(
        "every service's metrics (with container tags) and profile, and one deploy event per host",
        |r| {
            HOSTS.iter().zip(&svcs).all(|(h, name)| {
                let svc = format!("service:{}", service(h));
                let ctag = format!("container_name:{name}");
                r.find("example.requests", &[&svc, &ctag])
                    .iter()
                    .any(|s| s.host() == Some(*h))
                    && !profiles_of(r, &service(h)).is_empty()
            }) && HOSTS.iter().all(|h| {
                let title = format!("ECS deploy: {family} rev 1 → 2 on {h}");
                r.event_titles().contains(&title.as_str())
            })
        },
    );
    // Each profile reached the stand-in through its own host's agent only: a service cannot reach the others.
    for h in HOSTS {
        let n = profiles_of(&r, &service(h)).len();
        assert!(n >= 1, "{h}: {n} profiles");
    }

    for name in &svcs {
        assert_eq!(wait_exit(name), 0, "{name} exit code");
    }
    for a in &agents {
        assert!(
            docker(&["stop", "-t", "30", a]).status.success(),
            "docker stop {a}"
        );
        assert_eq!(inspect(a, "{{.State.ExitCode}}"), "0", "{a} exit code");
    }
    let r = intake.received();

    for (h, name) in HOSTS.iter().zip(&svcs) {
        let svc = format!("service:{}", service(h));
        let series = r.find("example.requests", &[&svc]);
        let hosts: std::collections::BTreeSet<Option<&str>> =
            series.iter().map(|s| s.host()).collect();
        assert_eq!(
            hosts,
            [Some(*h)].into_iter().collect(),
            "{svc}: example.requests must arrive under {h} only"
        );
        let total: f64 = series.iter().map(|s| s.count_total()).sum();
        assert_eq!(
            total,
            requests_sent(name) as f64,
            "{svc}: total of example.requests at the stand-in vs. what it recorded"
        );
        // Every series of that service: from that host's agent only.
        for s in r.series().filter(|s| s.has_tag(&svc)) {
            assert_eq!(s.host(), Some(*h), "{} {:?}", s.name(), s.tags());
        }
    }
    for h in HOSTS {
        let mine: Vec<&str> = r
            .event_titles()
            .into_iter()
            .filter(|t| t.contains(&family) && t.ends_with(&format!(" on {h}")))
            .collect();
        assert_eq!(
            mine,
            [format!("ECS deploy: {family} rev 1 → 2 on {h}").as_str()],
            "deploy events of {h}"
        );
    }
    let all_deploys = r
        .event_titles()
        .into_iter()
        .filter(|t| t.contains(&family))
        .count();
    assert_eq!(
        all_deploys,
        HOSTS.len(),
        "deploy events: {:?}",
        r.event_titles()
    );
}
