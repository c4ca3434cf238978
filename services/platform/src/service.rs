//! What every service gets from the process that runs it, and what it hands back: the
//! shared backends in, a router with its OpenAPI part, readiness checks and background
//! tasks out. `ww serve` and `ww dev` differ only in the backends they put in.

use std::sync::Arc;

use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::JwtKeys;
use crate::clock::Clock;
use crate::counters::Counters;
use crate::db::DatabaseUrl;
use crate::events::EventBus;
use crate::http::ReadinessCheck;
use crate::http::client_ip::ForwardedPolicy;

#[derive(Clone)]
pub struct Context {
    pub database: DatabaseUrl,
    pub db_max_connections: u32,
    pub counters: Counters,
    pub bus: EventBus,
    pub keys: Arc<JwtKeys>,
    pub clock: Clock,
    pub forwarded: Arc<ForwardedPolicy>,
    /// Turns true when the process is shutting down; background tasks stop on it.
    pub stop: watch::Receiver<bool>,
}

pub struct Started {
    pub name: &'static str,
    pub router: Router,
    pub openapi: utoipa::openapi::OpenApi,
    pub readiness: Vec<ReadinessCheck>,
    pub tasks: Vec<JoinHandle<()>>,
}
