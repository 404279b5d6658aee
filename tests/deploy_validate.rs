//! Offline validation of the deployment files in deploy/:
//! - ECS task definitions against the ECS API's own RegisterTaskDefinition schema (botocore's service model and
//!   ParamValidator, via tests/deploy/validate_ecs.py), and against what the image documents (mounts, ports, the
//!   API key as a secret);
//! - the Kubernetes DaemonSet's structure (tests/deploy/validate_k8s.py).
//!
//! python3 with botocore and PyYAML is needed; without them these tests skip with a message, unless
//! KELPIE_REQUIRE_TOOLS=1 (as CI sets), where a missing tool is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require_tools() -> bool {
    std::env::var("KELPIE_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Runs a validator script; `None` (after saying why) when python3 or its module is missing and tools are optional.
fn run_script(script: &str, module: &str, args: &[&Path]) -> Option<Output> {
    let probe = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output();
    let missing = match &probe {
        Err(e) => Some(format!("python3 is not available ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "the Python module {module} is not installed (pip install {module})"
        )),
        Ok(_) => None,
    };
    if let Some(why) = missing {
        assert!(!require_tools(), "KELPIE_REQUIRE_TOOLS=1 but {why}");
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/deploy").join(script));
    cmd.args(args);
    Some(cmd.output().expect("python3 runs"))
}

fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn task(name: &str) -> serde_json::Value {
    let path = root().join("deploy/ecs").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn ecs_task_definitions_are_valid_register_task_definition_input() {
    let Some(out) = run_script("validate_ecs.py", "botocore", &[]) else {
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for f in ["agent-daemon-task.json", "example-service-task.json"] {
        assert!(
            stdout.contains(&format!("{f}: ok")),
            "{f} not validated:\n{stdout}"
        );
    }
}

#[test]
fn the_validator_rejects_what_ecs_would_reject() {
    let dir = tempfile::tempdir().unwrap();
    let mut td = task("agent-daemon-task.json");
    let c = &mut td["containerDefinitions"][0];
    c["portMapings"] = serde_json::json!([]); // misspelt key
    c["cpu"] = serde_json::json!("100"); // wrong type
    c["mountPoints"][0]["sourceVolume"] = serde_json::json!("undeclared");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&td).unwrap()).unwrap();
    let Some(out) = run_script("validate_ecs.py", "botocore", &[&bad]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Unknown parameter") && stdout.contains("portMapings"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Invalid type for parameter containerDefinitions[0].cpu"),
        "{stdout}"
    );
    assert!(
        stdout.contains("undeclared volume 'undeclared'"),
        "{stdout}"
    );
}

#[test]
fn the_agent_task_has_the_documented_mounts_ports_and_secret() {
    let td = task("agent-daemon-task.json");
    let c = &td["containerDefinitions"][0];
    let mounts: Vec<(&str, bool)> = c["mountPoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["containerPath"].as_str().unwrap(),
                m["readOnly"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    for (path, ro) in [
        ("/var/run/docker.sock", true),
        ("/host/proc", true),
        ("/host/sys/fs/cgroup", true),
        ("/var/run/datadog", false),
    ] {
        assert!(
            mounts.contains(&(path, ro)),
            "{path} (read-only {ro}) missing from {mounts:?}"
        );
    }
    let udp = c["portMappings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["containerPort"] == 8125 && p["hostPort"] == 8125 && p["protocol"] == "udp");
    assert!(udp, "8125/udp host port mapping");
    let secret = c["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "DD_API_KEY");
    assert!(secret.is_some(), "DD_API_KEY comes from a secret");
    let env = c["environment"].as_array().unwrap();
    assert!(
        !env.iter().any(|e| e["name"] == "DD_API_KEY"),
        "the API key is not in plain environment"
    );
    assert_eq!(c["healthCheck"]["command"][1], "/usr/bin/kelpie");
    // The agent exits within 10 s of SIGTERM (6 s of draining, 1 s for requests in flight, the last flush):
    // ECS waits long enough for that, and not much longer before a host can be drained.
    let stop = c["stopTimeout"].as_u64().unwrap_or(0);
    assert!((10..=20).contains(&stop), "stopTimeout {stop}");

    // The example service writes to the socket the agent listens on, through the same host directory.
    let agent_socket = env
        .iter()
        .find(|e| e["name"] == "DD_DOGSTATSD_SOCKET")
        .and_then(|e| e["value"].as_str())
        .unwrap();
    let ex = task("example-service-task.json");
    let ec = &ex["containerDefinitions"][0];
    let url = ec["environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DD_DOGSTATSD_URL")
        .and_then(|e| e["value"].as_str())
        .unwrap();
    assert_eq!(url, format!("unix://{agent_socket}"));
    let host_dir = |td: &serde_json::Value, vol: &str| {
        td["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == vol)
            .map(|v| {
                v["host"]["sourcePath"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string()
            })
    };
    assert_eq!(host_dir(&td, "dsdsocket"), host_dir(&ex, "dsdsocket"));
}

#[test]
fn the_kubernetes_daemonset_is_well_formed() {
    let Some(out) = run_script("validate_k8s.py", "yaml", &[]) else {
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("daemonset.yaml: ok"));
}

/// The instructions of a Dockerfile's final stage that define the runtime contract (ENV, USER, HEALTHCHECK,
/// ENTRYPOINT, CMD, EXPOSE, VOLUME), with continuation lines joined.
fn runtime_contract(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let final_stage = text.rsplit("\nFROM ").next().unwrap_or(&text).to_string();
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in final_stage.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (body, continues) = match line.strip_suffix('\\') {
            Some(b) => (b.trim(), true),
            None => (line, false),
        };
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(body);
        if !continues {
            joined.push(std::mem::take(&mut current));
        }
    }
    let keep = [
        "ENV ",
        "USER ",
        "HEALTHCHECK ",
        "ENTRYPOINT ",
        "CMD ",
        "EXPOSE ",
        "VOLUME ",
    ];
    joined
        .into_iter()
        .filter(|l| keep.iter().any(|k| l.starts_with(k)))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn the_published_and_local_images_have_the_same_runtime_contract() {
    let published = runtime_contract(&root().join("Dockerfile"));
    let local = runtime_contract(&root().join("docker/kelpie.Dockerfile"));
    assert_eq!(published, local);
    let all = published.join("\n");
    for want in [
        "USER 10001:10001",
        "HOST_PROC=/host/proc",
        "HOST_SYS=/host/sys",
        "DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true",
        "DD_DOGSTATSD_SOCKET=/var/run/datadog/dsd.socket",
        r#"CMD ["/usr/bin/kelpie", "status", "--health"]"#,
        r#"ENTRYPOINT ["/usr/bin/kelpie"]"#,
        r#"CMD ["agent"]"#,
        r#"VOLUME ["/var/run/datadog"]"#,
        "EXPOSE 8125/udp",
    ] {
        assert!(all.contains(want), "{want} missing from:\n{all}");
    }
}
