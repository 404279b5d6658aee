//! Whole host, end to end, on the real Docker engine (issue "Ship it", item 4): the three images from
//! scripts/build-image.sh; the agent container run as documented (SPEC.md §8: `--pid host --cgroupns host
//! --read-only`, Docker socket, `/proc`, cgroup fs, a socket volume) but pointed at a stand-in container; three
//! example-service containers sending over the agent's Unix socket, one labelled as an ECS task at revision 7
//! and then redeployed at 8. Checked at the stand-in: per-service metrics with their container and ECS tags
//! (origin detection across containers), `docker.*` and `system.*`, exactly one deploy event, profiles, and that
//! `docker stop` of the agent exits 0 having delivered every counted request.
//!
//! Skipped with a message without Docker (a failure under KELPIE_REQUIRE_DOCKER=1). Everything started is
//! removed on drop, also on failure.

mod e2e_support;

use e2e_support::*;

const REQUESTS: u32 = 1000;

#[test]
fn whole_host_services_containers_deploy_profiles_and_clean_stop() {
    if !ready() {
        return;
    }
    let mut c = Cleanup::default();
    let net = c.network("net");
    let vol = c.volume("dsd");
    let (standin, intake) = Standin::start(&mut c, &net);
    let hostname = format!("e2e-host-{}", std::process::id());
    let agent = start_agent(&mut c, "agent", &net, &vol, &hostname, &standin);

    // The host's own metrics and the agent's heartbeat, under the configured hostname.
    let under_host = |r: &Received, name: &str| {
        r.find(name, &[])
            .iter()
            .any(|s| s.host() == Some(hostname.as_str()))
    };
    intake.wait(
        "system.* and datadog.agent.running under the agent's hostname",
        |r| {
            [
                "system.cpu.user",
                "system.mem.total",
                "system.load.1",
                "datadog.agent.running",
            ]
            .iter()
            .all(|n| under_host(r, n))
        },
    );

    let host = Host {
        network: &net,
        volume: &vol,
        agent: &agent,
    };
    let family = Cleanup::name("family");
    let fam = format!("com.amazonaws.ecs.task-definition-family={family}");
    let ecs = |rev: &'static str| {
        vec![
            "-l".to_string(),
            fam.clone(),
            "-l".to_string(),
            format!("com.amazonaws.ecs.task-definition-version={rev}"),
            "-l".to_string(),
            "com.amazonaws.ecs.cluster=e2e-cluster".to_string(),
            "-l".to_string(),
            "com.amazonaws.ecs.container-name=app".to_string(),
        ]
    };
    let ecs7 = ecs("7");
    let ecs7: Vec<&str> = ecs7.iter().map(String::as_str).collect();
    let svc_a = start_service(&mut c, "svc-a", host, "e2e-a", &ecs7, REQUESTS);
    let svc_b = start_service(&mut c, "svc-b", host, "e2e-b", &[], REQUESTS);
    let svc_c = start_service(&mut c, "svc-c", host, "e2e-c", &[], REQUESTS);

    let cname = |n: &str| format!("container_name:{n}");
    let fam_tag = format!("task_family:{family}");
    intake.wait(
        "example.requests of svc-a tagged with its container and ECS task rev 7",
        |r| {
            !r.find(
                "example.requests",
                &[
                    "service:e2e-a",
                    "env:test",
                    &cname(&svc_a),
                    &fam_tag,
                    "task_version:7",
                ],
            )
            .is_empty()
        },
    );

    // The redeploy: the same family at revision 8, while revision 7 still runs.
    let ecs8 = ecs("8");
    let ecs8: Vec<&str> = ecs8.iter().map(String::as_str).collect();
    let svc_a8 = start_service(&mut c, "svc-a8", host, "e2e-a", &ecs8, REQUESTS);

    let services = [
        (&svc_a, "e2e-a", Some("7")),
        (&svc_b, "e2e-b", None),
        (&svc_c, "e2e-c", None),
        (&svc_a8, "e2e-a", Some("8")),
    ];
    for (name, service, rev) in services {
        let svc_tag = format!("service:{service}");
        let mut tags = vec![svc_tag.as_str(), "env:test"];
        let ctag = cname(name);
        tags.push(&ctag);
        let rev_tag = rev.map(|v| format!("task_version:{v}"));
        if let Some(t) = &rev_tag {
            tags.push(&fam_tag);
            tags.push(t);
        }
        let what = format!("{name}: example.requests, its histogram and runtime.rust.* with {tags:?}, and docker.* for its container");
        intake.wait(&what, |r| {
            !r.find("example.requests", &tags).is_empty()
                && !r
                    .find("example.request.duration.95percentile", &tags)
                    .is_empty()
                && !r.with_prefix("runtime.rust.", &ctag).is_empty()
                && !r.with_prefix("docker.", &ctag).is_empty()
        });
    }

    let deploy_title = format!("ECS deploy: {family} rev 7 → 8 on {hostname}");
    intake.wait(&format!("the event {deploy_title:?}"), |r| {
        r.event_titles().contains(&deploy_title.as_str())
    });
    let r = intake.wait("a profile from each service", |r| {
        ["e2e-a", "e2e-b", "e2e-c"]
            .iter()
            .all(|s| !profiles_of(r, s).is_empty())
    });
    for p in profiles_of(&r, "e2e-b") {
        let files: Vec<&str> = p["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["filename"].as_str())
            .collect();
        assert!(
            files.contains(&"event.json") && files.contains(&"cpu.pprof"),
            "profile parts {:?}",
            p["parts"]
        );
    }

    // Every service finishes its requests and exits cleanly; then the agent is stopped right away, so the last
    // buckets only reach the stand-in through its shutdown flush.
    for (name, _, _) in services {
        assert_eq!(wait_exit(name), 0, "{name} exit code");
    }
    let stopped = docker(&["stop", "-t", "30", &agent]);
    assert!(stopped.status.success(), "docker stop {agent} failed");
    assert_eq!(
        inspect(&agent, "{{.State.ExitCode}}"),
        "0",
        "the agent's exit code after docker stop"
    );
    let r = intake.received();

    for service in ["e2e-a", "e2e-b", "e2e-c"] {
        let svc_tag = format!("service:{service}");
        let series = r.find("example.requests", &[&svc_tag]);
        let got: f64 = series.iter().map(|s| s.count_total()).sum();
        let sent: u64 = services
            .iter()
            .filter(|(_, s, _)| *s == service)
            .map(|(n, _, _)| requests_sent(n))
            .sum();
        assert_eq!(
            got, sent as f64,
            "{service}: total of example.requests at the stand-in vs. what its containers recorded"
        );
        // Origin detection tagged all of it, not just some.
        for s in &series {
            assert!(
                s.tags().iter().any(|t| t.starts_with("container_name:")),
                "{service}: a series without container tags: {:?}",
                s.tags()
            );
            assert_eq!(s.host(), Some(hostname.as_str()), "{:?}", s.tags());
        }
    }
    let deploys: Vec<&str> = r
        .event_titles()
        .into_iter()
        .filter(|t| t.contains(&family))
        .collect();
    assert_eq!(deploys, [deploy_title.as_str()], "deploy events");
    let ev = r
        .events()
        .into_iter()
        .find(|e| e["title"].as_str() == Some(deploy_title.as_str()))
        .cloned()
        .unwrap_or_default();
    let ev_tags: Vec<&str> = ev["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .collect();
    for t in [
        "event_type:deploy",
        fam_tag.as_str(),
        "task_version:8",
        "previous_task_version:7",
    ] {
        assert!(
            ev_tags.contains(&t),
            "deploy event tags {ev_tags:?} lack {t}"
        );
    }
}
