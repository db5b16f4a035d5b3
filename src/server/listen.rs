//! The accept loop: what one connection may cost. `axum::serve` sets no timer, so a client
//! that opens a connection and sends half a header (or nothing) holds a descriptor and a
//! task forever; enough of them and the server stops accepting (`Too many open files`).
//! Here every connection
//! * must send its request headers within `header_timeout` (hyper's header-read timeout,
//!   which also bounds the wait for the next request on a kept-alive connection);
//! * counts against `max_connections`: beyond it a new connection is closed at once,
//!   so the process never runs out of descriptors;
//! * is shut down gracefully on stop, within a bounded grace period.
//!
//! A request body that sends nothing for `body_idle_timeout` is cut by the router
//! (`tower_http`'s request-body timeout, see `super::router`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Per-connection limits.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and between kept-alive requests).
    pub header_timeout: Duration,
    /// Time a request body may send nothing before it is cut.
    pub body_idle_timeout: Duration,
}

/// Default connection limit.
pub const MAX_CONNECTIONS_DEFAULT: usize = 256;
/// Default header-read timeout.
pub const HEADER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Default request-body idle timeout.
pub const BODY_IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: MAX_CONNECTIONS_DEFAULT,
            header_timeout: HEADER_TIMEOUT_DEFAULT,
            body_idle_timeout: BODY_IDLE_TIMEOUT_DEFAULT,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then gives open connections
/// `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the open
                    // connections time out and free their descriptors.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("microcash_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        metrics::gauge!("microcash_connections_open")
            .set((limits.max_connections - slots.available_permits()) as f64);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            // The HTTP/1-or-2 detection reads the first bytes before hyper's header timer
            // runs: a client that sends nothing at all is cut here.
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => {
                    drop(slot);
                    return;
                }
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("connections still open after the grace period; closing them");
        }
    }
}
