//! The HTTP server: the accept loop (HTTP/1.1, a connection cap, a header-read timeout),
//! the connection threads it hands connections to (`http/workers.rs`), lingering close
//! (`http/linger.rs`), graceful shutdown, and the loopback rule for servers without
//! authentication. What is served is [`router`](crate::router::router)'s.

mod linger;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use hyper_util::server::graceful::Watcher;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::state::AppState;

/// Refuse to listen beyond loopback when no authentication is configured.
pub fn check_bind(addr: SocketAddr, auth_enabled: bool) -> Result<(), ApiError> {
    if auth_enabled || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "refusing to listen on {addr} without authentication: every caller would see every \
         session. Configure auth.api_keys or auth.jwt, or listen on 127.0.0.1"
    )))
}

/// How connections are served: the routes and the HTTP/1 settings.
#[derive(Clone)]
struct Serving {
    app: axum::Router,
    http: hyper::server::conn::http1::Builder,
}

impl Serving {
    /// Serve `tcp` on a task of the current runtime until it closes (or shutdown ends it
    /// through `watcher`); `held` (the connection's slot) is released then.
    fn spawn(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
        held: impl Send + 'static,
    ) {
        let app = self.app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
        });
        let conn = self.http.serve_connection(
            hyper_util::rt::TokioIo::new(linger::Lingering::new(tcp)),
            service,
        );
        let conn = watcher.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            drop(held);
        });
    }
}

/// Serve `state` on `listener` until `shutdown` completes; open streams get
/// `server.shutdown_grace_secs` to finish.
///
/// HTTP/1.1, at most `server.max_connections` connections at once (further ones wait in
/// the listen backlog). A connection must send a complete request head within
/// `server.header_read_timeout_secs` of opening or of its previous answer, so neither a
/// slow-header client nor an idle keep-alive connection holds a descriptor for long.
///
/// Accepted connections go to `server.workers` connection threads, each with its own
/// single-threaded runtime (the one with the fewest open connections takes the next);
/// with `server.work_stealing`, each is a task of the caller's runtime instead.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cfg = state.config.server.clone();
    let grace = Duration::from_secs(cfg.shutdown_grace_secs);
    let token = state.shutdown.clone();
    let runs = state.runs.clone();
    crate::interrupts::spawn_expiry(
        state.store.clone(),
        state.checkpoints.clone(),
        state.config.limits.interrupted_run_ttl_secs,
        token.clone(),
    );
    crate::knowledge::spawn_job_sweep(state.store.clone(), state.shutdown.clone());
    crate::runs::spawn_sweep(state.store.clone(), &state.config.telemetry, token.clone());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_read_timeout_secs));
    let serving = Serving {
        app: crate::router::router(state),
        http,
    };
    let workers = if cfg.work_stealing {
        None
    } else {
        Some(workers::Workers::start(cfg.worker_threads(), &serving)?)
    };
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stop = async {
            tokio::select! {
                _ = &mut shutdown => {}
                _ = token.cancelled() => {}
            }
        };
        let accepted = tokio::select! {
            a = accept(&listener, &slots) => a,
            _ = stop => break,
        };
        let Some((tcp, peer, slot)) = accepted else {
            continue;
        };
        // Small SSE writes must leave at once, not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        match &workers {
            Some(w) => w.dispatch(tcp, peer, slot, graceful.watcher()),
            None => serving.spawn(tcp, peer, graceful.watcher(), slot),
        }
    }
    tracing::info!("shutting down; waiting for open requests and streams");
    token.cancel();
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over; closing the remaining connections");
        }
    }
    // The traces of the last runs (before the connection threads end: a store's pooled
    // connections may be driven by their runtimes).
    runs.flush().await;
    if let Some(w) = workers {
        w.stop().await;
    }
    Ok(())
}

/// The next connection, once a slot is free. `None` after an accept error (logged; the
/// loop goes on: running out of descriptors is a reason to wait, not to stop serving).
async fn accept(
    listener: &tokio::net::TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(tokio::net::TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((tcp, peer)) => Some((tcp, peer, slot)),
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}
