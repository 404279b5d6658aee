//! Where metrics and profiles go, read from the environment the way Datadog's client libraries read it.
//!
//! DogStatsD destination, first match wins:
//! 1. `DD_DOGSTATSD_URL`: `udp://host:port`, `unix:///path/to/dsd.socket` (or `unixgram://`, the same thing);
//! 2. `DD_DOGSTATSD_SOCKET`: a Unix datagram socket path (what the agent listens on, shared as a volume);
//! 3. `DD_AGENT_HOST` (default `localhost`) and `DD_DOGSTATSD_PORT` (default `8125`), over UDP.
//!
//! Profile intake (the agent's trace port): `DD_TRACE_AGENT_URL` (`http://host:port`), else
//! `http://$DD_AGENT_HOST:$DD_TRACE_AGENT_PORT` (defaults `localhost`, `8126`).

use crate::Error;
use std::fmt;
use std::path::PathBuf;

/// Default DogStatsD UDP port.
pub const DEFAULT_DOGSTATSD_PORT: u16 = 8125;
/// Default trace-agent port, where the agent accepts profiles.
pub const DEFAULT_TRACE_AGENT_PORT: u16 = 8126;

/// Where DogStatsD datagrams are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// UDP to `host:port` (the host is resolved once, at start-up).
    Udp { host: String, port: u16 },
    /// A Unix datagram socket.
    Unix(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Udp { host, port } if host.contains(':') => write!(f, "udp://[{host}]:{port}"),
            Target::Udp { host, port } => write!(f, "udp://{host}:{port}"),
            Target::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

impl Target {
    /// Parses a `DD_DOGSTATSD_URL` value: `udp://host[:port]`, `unix:///path` or `unixgram:///path`.
    pub fn parse_url(value: &str) -> Result<Target, Error> {
        let bad = |reason: &str| Error::InvalidAddress {
            var: "DD_DOGSTATSD_URL",
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let value_trimmed = value.trim();
        if let Some(rest) = value_trimmed.strip_prefix("udp://") {
            let (host, port) = split_host_port(rest).map_err(|r| bad(&r))?;
            return Ok(Target::Udp {
                host,
                port: port.unwrap_or(DEFAULT_DOGSTATSD_PORT),
            });
        }
        for scheme in ["unix://", "unixgram://"] {
            if let Some(path) = value_trimmed.strip_prefix(scheme) {
                if !path.starts_with('/') {
                    return Err(bad(
                        "the socket path must be absolute (unix:///var/run/datadog/dsd.socket)",
                    ));
                }
                return Ok(Target::Unix(PathBuf::from(path)));
            }
        }
        if value_trimmed.starts_with("unixstream://") {
            return Err(bad(
                "Unix stream sockets are not supported by the toolkit; use unix:// (datagram)",
            ));
        }
        Err(bad("expected udp://host:port or unix:///path"))
    }

    /// Reads the destination from an environment lookup (see the module documentation for the order).
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Target, Error> {
        if let Some(url) = non_empty(env("DD_DOGSTATSD_URL")) {
            return Target::parse_url(&url);
        }
        if let Some(path) = non_empty(env("DD_DOGSTATSD_SOCKET")) {
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        let host = non_empty(env("DD_AGENT_HOST")).unwrap_or_else(|| "localhost".to_string());
        let port = match non_empty(env("DD_DOGSTATSD_PORT")) {
            Some(p) => parse_port("DD_DOGSTATSD_PORT", &p)?,
            None => DEFAULT_DOGSTATSD_PORT,
        };
        Ok(Target::Udp { host, port })
    }
}

/// The base URL of the agent's trace port, where profiles are posted (`DD_TRACE_AGENT_URL`, or
/// `DD_AGENT_HOST` + `DD_TRACE_AGENT_PORT`).
pub fn agent_url_from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    if let Some(url) = non_empty(env("DD_TRACE_AGENT_URL")) {
        let url = url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::InvalidAddress {
                var: "DD_TRACE_AGENT_URL",
                value: url,
                reason: "expected http://host:port (Unix sockets are not supported for profiles)"
                    .to_string(),
            });
        }
        return Ok(url);
    }
    let host = non_empty(env("DD_AGENT_HOST")).unwrap_or_else(|| "localhost".to_string());
    let port = match non_empty(env("DD_TRACE_AGENT_PORT")) {
        Some(p) => parse_port("DD_TRACE_AGENT_PORT", &p)?,
        None => DEFAULT_TRACE_AGENT_PORT,
    };
    if host.contains(':') {
        Ok(format!("http://[{host}]:{port}"))
    } else {
        Ok(format!("http://{host}:{port}"))
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn parse_port(var: &'static str, value: &str) -> Result<u16, Error> {
    match value.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Error::InvalidAddress {
            var,
            value: value.to_string(),
            reason: "expected a port number from 1 to 65535".to_string(),
        }),
    }
}

/// Splits `host[:port]`, `[v6]` or `[v6]:port`.
fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let s = s.trim_end_matches('/');
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| "unclosed '[' in an IPv6 address".to_string())?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("unexpected text after the IPv6 address".to_string()),
        };
        (host, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".to_string());
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => Some(p),
            _ => return Err(format!("{p:?} is not a port number from 1 to 65535")),
        },
        None => None,
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn url_forms() {
        assert_eq!(
            Target::parse_url("udp://10.0.0.5:9125").ok(),
            Some(Target::Udp {
                host: "10.0.0.5".into(),
                port: 9125
            })
        );
        assert_eq!(
            Target::parse_url("udp://agent").ok(),
            Some(Target::Udp {
                host: "agent".into(),
                port: 8125
            })
        );
        assert_eq!(
            Target::parse_url("udp://[::1]:8125").ok(),
            Some(Target::Udp {
                host: "::1".into(),
                port: 8125
            })
        );
        assert_eq!(
            Target::parse_url("unix:///var/run/datadog/dsd.socket").ok(),
            Some(Target::Unix("/var/run/datadog/dsd.socket".into()))
        );
        assert_eq!(
            Target::parse_url("unixgram:///tmp/x.sock").ok(),
            Some(Target::Unix("/tmp/x.sock".into()))
        );
        for bad in [
            "tcp://x:1",
            "udp://:8125",
            "udp://h:0",
            "udp://h:99999",
            "udp://[::1",
            "unix://relative",
            "unixstream:///a",
            "",
        ] {
            let err = Target::parse_url(bad).expect_err(bad);
            assert!(err.to_string().contains("DD_DOGSTATSD_URL"), "{err}");
        }
    }

    #[test]
    fn env_precedence() {
        let both = lookup(&[
            ("DD_DOGSTATSD_URL", "udp://a:1"),
            ("DD_DOGSTATSD_SOCKET", "/s"),
            ("DD_AGENT_HOST", "h"),
        ]);
        assert_eq!(
            Target::from_lookup(&both).ok(),
            Some(Target::Udp {
                host: "a".into(),
                port: 1
            })
        );
        let sock = lookup(&[("DD_DOGSTATSD_SOCKET", "/s"), ("DD_AGENT_HOST", "h")]);
        assert_eq!(
            Target::from_lookup(&sock).ok(),
            Some(Target::Unix("/s".into()))
        );
        let host = lookup(&[("DD_AGENT_HOST", "h"), ("DD_DOGSTATSD_PORT", "9")]);
        assert_eq!(
            Target::from_lookup(&host).ok(),
            Some(Target::Udp {
                host: "h".into(),
                port: 9
            })
        );
        let none = lookup(&[]);
        assert_eq!(
            Target::from_lookup(&none).ok(),
            Some(Target::Udp {
                host: "localhost".into(),
                port: 8125
            })
        );
        let bad = lookup(&[("DD_DOGSTATSD_PORT", "eighty")]);
        assert!(Target::from_lookup(&bad).is_err());
    }

    #[test]
    fn agent_url() {
        assert_eq!(
            agent_url_from_lookup(&lookup(&[])).ok().as_deref(),
            Some("http://localhost:8126")
        );
        assert_eq!(
            agent_url_from_lookup(&lookup(&[
                ("DD_AGENT_HOST", "172.17.0.1"),
                ("DD_TRACE_AGENT_PORT", "9126")
            ]))
            .ok()
            .as_deref(),
            Some("http://172.17.0.1:9126")
        );
        assert_eq!(
            agent_url_from_lookup(&lookup(&[("DD_TRACE_AGENT_URL", "http://x:1/")]))
                .ok()
                .as_deref(),
            Some("http://x:1")
        );
        assert!(agent_url_from_lookup(&lookup(&[("DD_TRACE_AGENT_URL", "unix:///a")])).is_err());
    }
}
