//! The agent's first log lines once it is up: what it listens on, where it sends, and which collectors run
//! (or why not), so that a person reading `docker logs` knows at once whether the setup is what they meant.

use crate::config::Config;
use crate::pipeline::Bound;
use crate::status::CollectorStatus;
use std::collections::BTreeMap;

/// The summary lines, in order.
pub fn summary(
    cfg: &Config,
    bound: &Bound,
    collectors: &BTreeMap<&'static str, CollectorStatus>,
    version: &str,
) -> Vec<String> {
    let mut listens = Vec::new();
    match bound.udp {
        Some(a) => listens.push(format!("DogStatsD UDP {a}")),
        None => listens.push("DogStatsD UDP off (dogstatsd_port: 0)".to_string()),
    }
    if let Some(p) = &cfg.dogstatsd_socket {
        listens.push(format!("DogStatsD Unix datagram socket {}", p.display()));
    }
    if let Some(p) = &cfg.dogstatsd_stream_socket {
        listens.push(format!("DogStatsD Unix stream socket {}", p.display()));
    }
    listens.push(format!("status page http://{}/", bound.status));
    if let Some(p) = bound.profiles {
        listens.push(format!("profiles {p}"));
    }
    let sends = match &cfg.api_key {
        Some(_) => format!(
            "sending to {} every {} s{}",
            cfg.dd_url,
            cfg.flush_interval.as_secs(),
            cfg.forwarder_storage_path
                .as_ref()
                .map_or(String::new(), |p| format!(
                    "; payloads not sent yet are kept in {}",
                    p.display()
                ))
        ),
        None => format!(
            "local mode: no api_key (DD_API_KEY), nothing is sent; metrics, events and service checks are on \
             http://{}/",
            bound.status
        ),
    };
    let collectors: Vec<String> = collectors
        .iter()
        .map(|(name, c)| {
            let mut s = format!("{name} {}", if c.status == "ok" { "on" } else { &c.status });
            if *name == "docker" && c.status == "off" && !cfg.container_collection {
                s.push_str(" (container_collection: false)");
            }
            if *name == "host" {
                s.push_str(&format!(" ({})", cfg.host_proc.display()));
            }
            if let Some(e) = &c.error {
                s.push_str(&format!(" ({e})"));
            } else if let Some(d) = &c.detail {
                s.push_str(&format!(" ({d})"));
            }
            s
        })
        .collect();
    vec![
        format!(
            "kelpie agent {version} started on host {} ({} mode)",
            cfg.hostname,
            cfg.mode()
        ),
        format!("listening: {}", listens.join(", ")),
        sends,
        format!("collectors: {}", collectors.join("; ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_where_it_listens_sends_and_why_a_collector_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.yaml");
        std::fs::write(&path, "").unwrap();
        let env = [
            ("DD_HOSTNAME", "h1"),
            ("DD_CONTAINER_COLLECTION", "false"),
            ("DD_API_KEY", "k"),
            ("DD_DD_URL", "http://127.0.0.1:9"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = Config::load_from(Some(&path), env).unwrap();
        let bound = Bound {
            status: "127.0.0.1:5002".parse().unwrap(),
            udp: Some("127.0.0.1:8125".parse().unwrap()),
            profiles: None,
        };
        let mut collectors = BTreeMap::new();
        collectors.insert("host", CollectorStatus::new("ok"));
        collectors.insert("docker", CollectorStatus::new("off"));
        let lines = summary(&cfg, &bound, &collectors, "1.2.3");
        assert_eq!(
            lines[0],
            "kelpie agent 1.2.3 started on host h1 (forwarding mode)"
        );
        assert_eq!(
            lines[1],
            "listening: DogStatsD UDP 127.0.0.1:8125, status page http://127.0.0.1:5002/"
        );
        assert_eq!(lines[2], "sending to http://127.0.0.1:9 every 10 s");
        assert_eq!(
            lines[3],
            "collectors: docker off (container_collection: false); host on (/proc)"
        );
    }
}
