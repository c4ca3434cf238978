//! Assembles a service's API router with the shared endpoints and layers, and serves it
//! with graceful shutdown: on SIGTERM readiness fails, in-flight requests drain (bounded
//! by a grace period) and background tasks are told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use super::health::{self, Readiness};
use super::layers::{self, Limits};
use super::metrics;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Limits every service shares; set from [`crate::config::HttpConfig`].
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    pub shutdown_grace: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            shutdown_grace: Duration::from_secs(25),
        }
    }
}

/// A ready-to-serve application: the API plus health, metrics and OpenAPI.
pub struct Server {
    router: Router,
    readiness: Readiness,
    shutdown_grace: Duration,
}

impl Server {
    /// Wraps `api` (already holding its state) with the shared endpoints and layers.
    pub fn new(api: Router, openapi: serde_json::Value, readiness: Readiness, settings: &HttpSettings) -> Self {
        let limits = Limits {
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            max_body_bytes: settings.max_body_bytes,
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
            .layer(axum::middleware::from_fn(metrics::track))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<_>| {
                        let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                    })
                    // A 5xx is already logged where it arises (with its cause); a 503 from
                    // shedding or readiness is expected and must not flood the logs.
                    .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
            )
            .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid));
        Self { router, readiness, shutdown_grace: settings.shutdown_grace }
    }

    /// The whole router, for `oneshot` tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves on `listener` until `stop` turns true (or SIGTERM/SIGINT when `stop` is
    /// [`shutdown_signal`]), then drains in-flight requests for at most the grace period.
    pub async fn serve(self, listener: TcpListener, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
        let readiness = self.readiness.clone();
        let grace = self.shutdown_grace;
        let (drained_tx, mut drained_rx) = watch::channel(false);
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
            readiness.set_draining();
            tracing::info!(grace_seconds = grace.as_secs(), "shutting down: draining in-flight requests");
            let _ = drained_tx.send(true);
        };
        let app = self.router.into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(signal);
        tokio::select! {
            result = server => result,
            _ = async {
                let _ = drained_rx.wait_for(|d| *d).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!("grace period over; closing remaining connections");
                Ok(())
            }
        }
    }
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
