//! `import`: existing monitors of the account written out as `datadog_monitor` resources.

use crate::api::Client;
use std::path::PathBuf;

pub(super) async fn import(
    tags: Option<String>,
    name: Option<String>,
    mut ids: Vec<i64>,
    query: Option<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let mut tag_list: Vec<String> = tags
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut name = name;
    if let Some(q) = &query {
        for term in q.split_whitespace() {
            let term = term.trim_matches('"');
            if let Some(t) = term.strip_prefix("tag:") {
                tag_list.push(t.trim_matches('"').to_string());
            } else if let Some(i) = term.strip_prefix("id:") {
                match i.parse() {
                    Ok(i) => ids.push(i),
                    Err(_) => {
                        eprintln!("error: --query: \"{term}\" is not id:<number>");
                        return Ok(1);
                    }
                }
            } else {
                let n = term.strip_prefix("name:").unwrap_or(term);
                name = Some(match name {
                    Some(prev) => format!("{prev} {n}"),
                    None => n.to_string(),
                });
            }
        }
    }
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let mut monitors = Vec::new();
    if !ids.is_empty() {
        for id in &ids {
            match client.get(*id).await {
                Ok(m) => monitors.push(m),
                Err(e) => {
                    eprintln!("error: cannot read monitor {id}: {}", e.api_message());
                    return Ok(1);
                }
            }
        }
    } else {
        let tags = tag_list.join(",");
        match client.list(Some(&tags), name.as_deref()).await {
            Ok(m) => monitors = m,
            Err(e) => {
                eprintln!("error: cannot list monitors: {e}");
                return Ok(1);
            }
        }
    }
    monitors.sort_by_key(|m| m.get("id").and_then(|i| i.as_i64()).unwrap_or(0));
    let text = crate::import::render(&monitors);
    match &out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return Ok(1);
            }
            eprintln!(
                "wrote {} monitor(s) to {}; `kelpie monitors plan` shows them being adopted.",
                monitors.len(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(0)
}
