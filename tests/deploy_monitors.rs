//! deploy/terraform is both the agent's deployment (aws_* resources) and its alerts: `kelpie monitors` must
//! accept the directory as it is (ignoring the aws_* resources), and its monitor unit tests must pass.

use std::process::Command;

fn kelpie(args: &[&str]) -> (bool, String, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/terraform");
    let out = Command::new(env!("CARGO_BIN_EXE_kelpie"))
        .args(args)
        .args(["--dir", dir])
        .output()
        .expect("kelpie runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_deployment_directory_validates_as_monitors() {
    let (ok, stdout, stderr) = kelpie(&["monitors", "validate"]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("6 monitor(s)"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn the_deployment_monitor_tests_pass() {
    let (ok, stdout, stderr) = kelpie(&["monitors", "test"]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("3 passed, 0 failed"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
