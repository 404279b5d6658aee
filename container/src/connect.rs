//! Connecting to Docker as `DOCKER_HOST` says, and saying why it failed in words a person can act on (the
//! socket's group and how to join it, a missing mount).

use crate::ContainerError;
use bollard::Docker;
use std::time::Duration;

/// Connects to Docker as `DOCKER_HOST` says and negotiates the API version (the daemon may be older than
/// bollard's default).
pub async fn connect(docker_host: Option<&str>) -> Result<Docker, ContainerError> {
    let at = docker_host
        .unwrap_or("unix:///var/run/docker.sock")
        .to_string();
    let err = |reason: String| ContainerError::Connect {
        at: at.clone(),
        reason,
    };
    let docker = if let Some(path) = at.strip_prefix("unix://") {
        Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
    } else if at.starts_with("tcp://") || at.starts_with("http://") {
        Docker::connect_with_http(&at, 120, bollard::API_DEFAULT_VERSION)
    } else if at.starts_with('/') {
        Docker::connect_with_unix(&at, 120, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(err("unsupported scheme (use unix:// or tcp://)".into()));
    }
    .map_err(|e| err(connect_reason(&e, &at)))?;
    let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| err("no answer within 10 s".into()))?
        .map_err(|e| err(connect_reason(&e, &at)))?;
    tokio::time::timeout(Duration::from_secs(10), docker.ping())
        .await
        .map_err(|_| err("ping got no answer within 10 s".into()))?
        .map_err(|e| err(connect_reason(&e, &at)))?;
    Ok(docker)
}

/// Why connecting to Docker failed, in words a person can act on: the whole error chain (bollard's own
/// message is only `client error (Connect)`), and for a socket the agent may not open, the fix.
fn connect_reason(e: &(dyn std::error::Error + 'static), at: &str) -> String {
    let mut parts = vec![e.to_string()];
    let mut io_kind = None;
    let mut cur = e.source();
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        cur = inner.source();
    }
    let socket = at.strip_prefix("unix://").unwrap_or(at);
    match io_kind {
        Some(std::io::ErrorKind::PermissionDenied) => permission_hint(socket),
        Some(std::io::ErrorKind::NotFound) if socket.starts_with('/') => format!(
            "{socket} does not exist (mount the Docker socket: -v /var/run/docker.sock:/var/run/docker.sock:ro, or set \
             DOCKER_HOST; container_collection: false turns Docker collection off)"
        ),
        _ => parts.join(": "),
    }
}

/// `permission denied on <socket>` with the socket's group and how to join it.
pub fn permission_hint(socket: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is this process's user.
    let uid =
        std::fs::metadata("/proc/self").map_or_else(|_| "?".to_string(), |m| m.uid().to_string());
    match std::fs::metadata(socket) {
        Ok(m) => {
            let gid = m.gid();
            format!(
                "permission denied on {socket} (owned by uid {}, gid {gid}, mode {:o}; the agent runs as uid {uid}): \
                 give the agent the socket's group with `docker run --group-add {gid}`, or `\"user\": \"10001:{gid}\"` \
                 in an ECS task definition",
                m.uid(),
                m.mode() & 0o777
            )
        }
        Err(_) => format!(
            "permission denied on {socket} (the agent runs as uid {uid}): give the agent the socket's group with \
             `docker run --group-add <gid>`, or `\"user\": \"10001:<gid>\"` in an ECS task definition (the gid is \
             `stat -c %g {socket}` on the host)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose source is `inner`, like hyper's `client error (Connect)` around the io error.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn permission_denied_names_the_socket_group_and_the_fix() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        std::fs::write(&sock, "").unwrap();
        let gid = std::fs::metadata(&sock).unwrap().gid();
        let e = Wrapped(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        let at = format!("unix://{}", sock.display());
        let text = connect_reason(&e, &at);
        assert!(text.starts_with("permission denied on "), "{text}");
        assert!(text.contains(&format!("--group-add {gid}")), "{text}");
        assert!(
            text.contains(&format!("\"user\": \"10001:{gid}\"")),
            "{text}"
        );
        // Other errors keep their whole chain instead of bollard's bare `client error (Connect)`.
        let e = Wrapped(std::io::Error::other("connection reset"));
        assert_eq!(
            connect_reason(&e, &at),
            "client error (Connect): connection reset"
        );
        let e = Wrapped(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(connect_reason(&e, "unix:///nope/docker.sock").contains("does not exist"));
    }
}
