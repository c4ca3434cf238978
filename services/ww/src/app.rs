//! Wires the chosen services to a [`Context`] of backends and assembles one server.

use std::time::Duration;

use platform::http::{HttpSettings, Readiness, Server};
use platform::service::{Context, Started};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{ServiceConfig, ServiceName};

/// The running services of one process.
pub struct App {
    pub server: Server,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts `services` on `ctx` (migrations, consumers, relays) and assembles the server.
pub async fn build(
    services: &[ServiceName],
    ctx: &Context,
    config: &ServiceConfig,
    http: &HttpSettings,
) -> anyhow::Result<App> {
    let mut started: Vec<Started> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let config = &ServiceConfig { issuers_in_process: services.contains(&ServiceName::CouponIssuer), ..config.clone() };
    for service in services.iter().filter(|s| seen.insert(**s)) {
        let s = (service.role().start)(ctx, config).await?;
        tracing::info!(service = s.name, "service started");
        started.push(s);
    }
    let mut router = axum::Router::new();
    let mut readiness = Readiness::default();
    let mut docs = Vec::new();
    // Every role refuses the access tokens of revoked sessions (see platform::sessions).
    let revocations = platform::sessions::follow(&ctx.bus, ctx.keys.revoked().clone(), ctx.stop.clone()).await?;
    readiness.add(revocations.readiness);
    let mut tasks = revocations.tasks;
    for s in started {
        router = router.merge(s.router);
        for check in s.readiness {
            readiness.add(check);
        }
        docs.push(s.openapi);
        tasks.extend(s.tasks);
    }
    let openapi = serde_json::to_value(platform::openapi::document(docs))?;
    Ok(App { server: Server::new(router, openapi, readiness, http), tasks })
}

impl App {
    /// Serves until `stop` turns true, then waits (bounded) for background tasks.
    pub async fn run(self, listener: TcpListener, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        self.server.serve(listener, stop).await?;
        let tasks = futures::future::join_all(self.tasks);
        if tokio::time::timeout(Duration::from_secs(10), tasks).await.is_err() {
            tracing::warn!("background tasks did not stop within 10s");
        }
        Ok(())
    }
}
