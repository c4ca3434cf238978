//! Assembles a service's API router with the shared endpoints and layers, and serves it
//! with graceful shutdown: on SIGTERM readiness fails, in-flight requests drain (bounded
//! by a grace period) and background tasks are told to stop. Connections are capped and
//! must send their headers promptly.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{HeaderName, Request};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use super::health::{self, Readiness};
use super::layers::{self, Limits};
use super::metrics;
use crate::trace::TraceParent;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Limits every service shares; set from [`crate::config::HttpConfig`].
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    /// The bound of `multipart/form-data` bodies (uploads); routes set their own within it.
    pub max_upload_bytes: usize,
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    pub shutdown_grace: Duration,
    /// How long a connection may take to send a request's headers (also the idle
    /// keep-alive timeout: the wait for the next request's headers starts at once).
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_upload_bytes: 12 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            shutdown_grace: Duration::from_secs(25),
            header_read_timeout: Duration::from_secs(65),
            max_connections: 10_000,
        }
    }
}

/// A ready-to-serve application: the API plus health, metrics and OpenAPI.
pub struct Server {
    router: Router,
    readiness: Readiness,
    shutdown_grace: Duration,
    header_read_timeout: Duration,
    max_connections: usize,
}

impl Server {
    /// Wraps `api` (already holding its state) with the shared endpoints and layers.
    pub fn new(api: Router, openapi: serde_json::Value, readiness: Readiness, settings: &HttpSettings) -> Self {
        let limits = Limits {
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            max_body_bytes: settings.max_body_bytes,
            max_upload_bytes: settings.max_upload_bytes,
            timeout: settings.request_timeout,
        };
        let api = api
            .layer(DefaultBodyLimit::max(settings.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(limits, layers::protect));
        let openapi = Arc::new(openapi);
        let ops = Router::new()
            .route("/healthz", axum::routing::get(health::healthz))
            .route("/readyz", axum::routing::get(health::readyz))
            .with_state(readiness.clone())
            .route("/metrics", axum::routing::get(metrics::render))
            .route(
                "/openapi.json",
                axum::routing::get(move || {
                    let doc = openapi.clone();
                    async move { axum::Json(doc.as_ref().clone()) }
                }),
            );
        // Make sure the recorder exists before the first request is measured.
        metrics::handle();
        let router = ops
            .merge(api)
            .fallback(layers::not_found)
            .method_not_allowed_fallback(layers::method_not_allowed)
            // A bug that panics in a handler answers 500 problem+json (and is counted as one),
            // rather than dropping the connection.
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(layers::panicked))
            .layer(axum::middleware::from_fn(metrics::track))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<_>| {
                        let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                        let trace_id = req.extensions().get::<TraceParent>().map(TraceParent::trace_id_hex);
                        let trace_id = trace_id.unwrap_or_default();
                        tracing::info_span!("request", request_id = %id, trace_id = %trace_id, method = %req.method(), path = %req.uri().path())
                    })
                    // A 5xx is already logged where it arises (with its cause); a 503 from
                    // shedding or readiness is expected and must not flood the logs.
                    .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
            )
            .layer(axum::middleware::from_fn(crate::trace::propagate))
            .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid));
        Self {
            router,
            readiness,
            shutdown_grace: settings.shutdown_grace,
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections.clamp(1, u32::MAX as usize),
        }
    }

    /// The whole router, for `oneshot` tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves on `listener` until `stop` turns true (or SIGTERM/SIGINT when `stop` is
    /// [`shutdown_signal`]), then drains in-flight requests for at most the grace period.
    ///
    /// Each connection must send a request's headers within the header-read timeout and
    /// at most `max_connections` are served at once (further ones wait in the listen
    /// backlog), so slow or idle connections cannot exhaust the process (slowloris).
    pub async fn serve(self, listener: TcpListener, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
        let grace = self.shutdown_grace;
        let connections = Arc::new(Semaphore::new(self.max_connections));
        let (closing_tx, closing) = watch::channel(false);
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(self.header_read_timeout).keep_alive(true);
        loop {
            let permit = tokio::select! {
                p = connections.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
                () = turned_true(&mut stop) => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = turned_true(&mut stop) => break,
            };
            let _ = stream.set_nodelay(true);
            let router = self.router.clone();
            let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            // Upgrades stay possible (WebSockets).
            let conn = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
            let mut closing = closing.clone();
            tokio::spawn(async move {
                // The permit is the connection's slot, returned when the connection ends.
                let _permit = permit;
                let mut conn = std::pin::pin!(conn);
                let ended = tokio::select! {
                    ended = conn.as_mut() => Some(ended),
                    () = turned_true(&mut closing) => None,
                };
                let ended = match ended {
                    Some(ended) => ended,
                    None => {
                        // Finish the request in flight, then close.
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = ended {
                    tracing::debug!(error = %e, peer = %peer, "connection ended with an error");
                }
            });
        }
        drop(listener);
        self.readiness.set_draining();
        tracing::info!(grace_seconds = grace.as_secs(), "shutting down: draining in-flight requests");
        let _ = closing_tx.send(true);
        // Every connection holds a permit until it ends: all permits back = drained.
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, connections.acquire_many(all)).await.is_err() {
            tracing::warn!("grace period over; closing remaining connections");
        }
        Ok(())
    }
}

/// Waits until `flag` is true (or its sender is gone), holding no borrow of it after.
async fn turned_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}

/// A stop channel that turns true on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        let _ = tx.send(true);
    });
    rx
}
