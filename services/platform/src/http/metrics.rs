//! Prometheus metrics: one recorder per process, request counts and latency histograms
//! per route and status, rendered at `/metrics`.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder);
        match recorder {
            Ok(recorder) => {
                let handle = recorder.handle();
                // A second recorder (another test in the same process) is harmless.
                let _ = metrics::set_global_recorder(recorder);
                handle
            }
            Err(e) => panic!("static histogram buckets are valid: {e}"),
        }
    })
}

pub(crate) async fn render() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle().render())
}

/// The counter and histogram of one (route, method, status), looked up once: a request then
/// records without allocating its labels or searching the registry.
type Handles = (metrics::Counter, metrics::Histogram);

/// Per route: the (method, status) pairs seen so far (a handful each).
type Table = HashMap<String, Vec<(Method, u16, Handles)>>;

static HANDLES: OnceLock<RwLock<Table>> = OnceLock::new();

fn handles(route: &str, method: &Method, status: u16) -> Handles {
    let table = HANDLES.get_or_init(RwLock::default);
    let find = |rows: &Vec<(Method, u16, Handles)>| {
        rows.iter().find(|(m, s, _)| m == method && *s == status).map(|(_, _, h)| h.clone())
    };
    if let Some(found) = table.read().unwrap_or_else(PoisonError::into_inner).get(route).and_then(find) {
        return found;
    }
    let labels = [("method", method.as_str().to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    let made = (
        metrics::counter!("http_requests_total", &labels),
        metrics::histogram!("http_request_duration_seconds", &labels),
    );
    let mut table = table.write().unwrap_or_else(PoisonError::into_inner);
    let rows = table.entry(route.to_owned()).or_default();
    if let Some(found) = find(rows) {
        return found;
    }
    rows.push((method.clone(), status, made.clone()));
    made
}

/// Middleware recording `http_requests_total` and `http_request_duration_seconds`.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (counter, histogram) = handles(route, &method, response.status().as_u16());
    counter.increment(1);
    histogram.record(started.elapsed().as_secs_f64());
    response
}
