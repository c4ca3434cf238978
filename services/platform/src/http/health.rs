//! `/healthz` (the process is alive) and `/readyz` (every backend answers and the
//! process is not draining). Readiness flips to 503 as soon as SIGTERM arrives so the
//! load balancer stops sending new work while in-flight requests finish.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures::future::BoxFuture;
use serde::Serialize;

type CheckFn = dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync;

/// One named backend check.
#[derive(Clone)]
pub struct ReadinessCheck {
    name: String,
    check: Arc<CheckFn>,
}

impl ReadinessCheck {
    pub fn new<F, Fut>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self { name: name.into(), check: Arc::new(move || Box::pin(check())) }
    }
}

/// What `/readyz` checks.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<ReadinessCheck>,
    draining: Arc<AtomicBool>,
}

#[derive(Serialize)]
struct ReadyReport {
    status: &'static str,
    checks: BTreeMap<String, String>,
}

impl Readiness {
    pub fn add(&mut self, check: ReadinessCheck) {
        if !self.checks.iter().any(|c| c.name == check.name) {
            self.checks.push(check);
        }
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Runs every check concurrently, each bounded by two seconds.
    pub async fn report(&self) -> (bool, BTreeMap<String, String>) {
        let runs = self.checks.iter().map(|c| async move {
            let outcome = match tokio::time::timeout(Duration::from_secs(2), (c.check)()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err("timed out after 2s".to_owned()),
            };
            (c.name.clone(), outcome)
        });
        let mut ok = !self.is_draining();
        let mut checks = BTreeMap::new();
        if self.is_draining() {
            checks.insert("process".to_owned(), "draining".to_owned());
        }
        for (name, outcome) in futures::future::join_all(runs).await {
            match outcome {
                Ok(()) => {
                    checks.insert(name, "ok".to_owned());
                }
                Err(e) => {
                    ok = false;
                    checks.insert(name, e);
                }
            }
        }
        (ok, checks)
    }
}

pub(crate) async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let (ok, checks) = readiness.report().await;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let report = ReadyReport { status: if ok { "ready" } else { "not-ready" }, checks };
    (status, axum::Json(report))
}
