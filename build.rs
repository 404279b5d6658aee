//! Records the git commit and the build target for `kelpie version`.
fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KELPIE_GIT_COMMIT={commit}");
    println!(
        "cargo:rustc-env=KELPIE_BUILD_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    // Only paths that exist: a missing one (a git worktree has a `.git` file) would rerun this every build.
    println!("cargo:rerun-if-changed=build.rs");
    for path in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
