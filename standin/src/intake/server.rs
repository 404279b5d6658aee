//! The intake's HTTP server: it listens, serves each connection with the router, and obeys the `Down`
//! and `Reset` failures (stop listening, drop connections).

use super::Shared;
use axum::Router;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Marker put in each request's extensions: notifying it closes that request's connection at once.
#[derive(Clone)]
pub(super) struct ConnKill(pub(super) Arc<Notify>);

fn is_down(rx: &watch::Receiver<Option<Instant>>) -> bool {
    rx.borrow().is_some_and(|until| Instant::now() < until)
}

/// Accept loop with its own connection tasks, so that `Down` can really stop listening and close every open
/// connection, and `Reset` can close one connection without an answer.
pub(super) async fn serve(
    shared: Arc<Shared>,
    router: Router,
    first: TcpListener,
    addr: SocketAddr,
) {
    let mut down_rx = shared.down.subscribe();
    let mut listener = Some(first);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => match bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("intake stand-in cannot listen again on {addr}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let mut conns = JoinSet::new();
        while !is_down(&down_rx) {
            tokio::select! {
                accepted = l.accept() => match accepted {
                    Ok((stream, _)) => {
                        conns.spawn(serve_connection(stream, router.clone()));
                    }
                    Err(e) => {
                        tracing::warn!("intake stand-in accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                changed = down_rx.changed() => if changed.is_err() { return },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        // Down: refuse new connections and drop the open ones.
        conns.abort_all();
        drop(conns);
        drop(l);
        loop {
            let until = *down_rx.borrow_and_update();
            match until {
                None => break,
                Some(t) if Instant::now() >= t => {
                    shared.down.send_replace(None);
                    break;
                }
                Some(t) => tokio::select! {
                    _ = tokio::time::sleep_until(t) => {}
                    changed = down_rx.changed() => if changed.is_err() { return },
                },
            }
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    let kill = Arc::new(Notify::new());
    let kill_for_requests = kill.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(ConnKill(kill_for_requests.clone()));
            let router = router.clone();
            async move { tower::ServiceExt::oneshot(router, req).await }
        });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => {}
        _ = kill.notified() => {}
    }
}
