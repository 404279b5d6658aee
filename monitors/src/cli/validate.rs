//! `validate` (the files offline, and with `--remote` by the API's validate endpoint) and `test` (the
//! monitors' unit tests): checking without changing the account.

use super::{color_stdout, load, print_errors, project_name, MonitorsArgs};
use crate::api::Client;
use crate::diag::Diag;
use crate::plan;
use futures::StreamExt;
use std::path::Path;

pub(super) async fn validate(args: &MonitorsArgs, remote: bool) -> anyhow::Result<i32> {
    let Some(loaded) = load(args) else {
        return Ok(1);
    };
    if remote {
        let client = match Client::from_env() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(1);
            }
        };
        let project = project_name(args);
        let client = &client;
        let project = &project;
        let dir = &args.dir;
        let results: Vec<Option<Diag>> =
            futures::stream::iter(loaded.monitors.iter().filter(|m| m.validate_remote).map(
                |m| async move {
                    let body = m.payload(project, &plan::rel_file(dir, &m.pos.file));
                    match client.validate(&body).await {
                        Ok(Ok(())) => None,
                        Ok(Err(msg)) => Some(Diag::new(
                            Some(m.pos.clone()),
                            Some(&m.address),
                            format!("the Datadog API rejects it: {msg}"),
                        )),
                        Err(e) => Some(Diag::new(
                            Some(m.pos.clone()),
                            Some(&m.address),
                            format!("cannot validate remotely: {e}"),
                        )),
                    }
                },
            ))
            .buffer_unordered(crate::api::MAX_IN_FLIGHT)
            .collect()
            .await;
        let mut errors: Vec<Diag> = results.into_iter().flatten().collect();
        if !errors.is_empty() {
            errors.sort_by_key(|a| a.to_string());
            print_errors(&errors);
            return Ok(1);
        }
    }
    println!(
        "{} monitor(s) in {} file(s) are valid{}.",
        loaded.monitors.len(),
        loaded.files,
        if remote {
            " (checked by the API too)"
        } else {
            ""
        }
    );
    Ok(0)
}

pub(super) fn test(args: &MonitorsArgs) -> anyhow::Result<i32> {
    let Some(loaded) = load(args) else {
        return Ok(1);
    };
    let results = crate::monitor_test::run(Path::new(&args.dir), &loaded.monitors);
    let color = color_stdout();
    let (mut pass, mut fail) = (0, 0);
    for r in &results {
        match &r.failure {
            None => {
                pass += 1;
                let tag = if color { "\x1b[32mPASS\x1b[0m" } else { "PASS" };
                println!("  {tag}  {}", r.name);
            }
            Some(f) => {
                fail += 1;
                let tag = if color { "\x1b[31mFAIL\x1b[0m" } else { "FAIL" };
                println!("  {tag}  {}: {f}", r.name);
            }
        }
    }
    if results.is_empty() {
        println!("no *.monitortest.hcl files in {}", args.dir.display());
    }
    println!("{pass} passed, {fail} failed");
    Ok(if fail > 0 { 1 } else { 0 })
}

/// `test --against`: the metric monitors evaluated over what a local agent recorded.
pub(super) async fn test_against(
    args: &MonitorsArgs,
    against: &str,
    json: bool,
) -> anyhow::Result<i32> {
    let Some(loaded) = load(args) else {
        return Ok(1);
    };
    Ok(crate::against::run(against, &loaded.monitors, json).await)
}
