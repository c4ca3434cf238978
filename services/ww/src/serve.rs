//! `ww serve`: the production roles on PostgreSQL, Redis and Kafka.

use std::sync::Arc;

use anyhow::Context as _;
use platform::auth::JwtKeys;
use platform::clock::Clock;
use platform::counters::Counters;
use platform::events::{EventBus, KafkaBus};
use platform::http::{ForwardedPolicy, shutdown_signal};
use platform::service::Context;
use tokio::net::TcpListener;

use crate::app;
use crate::cli::{ServeArgs, ServiceName};

const REDIS_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    platform::telemetry::init(args.log_format);
    // What each role needs said before it can run (see crate::roles).
    if let Some(missing) = args.services.iter().find_map(|s| (s.role().missing)(&args)) {
        anyhow::bail!(missing);
    }
    let stop = shutdown_signal();
    let ctx = context(&args, stop.clone()).await?;
    let app = app::build(&args.services, &ctx, &args.services_config, &args.http.settings()).await?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, services = ?args.services, "serving");
    app.run(listener, stop).await
}

/// Connects the production backends, failing with the variable to set when one is missing.
pub async fn context(args: &ServeArgs, stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<Context> {
    let database =
        args.database.database_url.clone().context("no database configured: set WW_DATABASE_URL (postgres://…)")?;
    let keys = JwtKeys::from_config(&args.jwt)?;
    let needs_redis: Vec<ServiceName> = args.services.iter().copied().filter(|s| s.role().redis).collect();
    let counters = if !needs_redis.is_empty() {
        let url = args
            .redis
            .redis_url
            .as_deref()
            .with_context(|| format!("{needs_redis:?} need Redis: set WW_REDIS_URL (redis://…)"))?;
        let shown = platform::config::redact_url(url);
        // The client retries an unreachable server for minutes; fail the start instead
        // (the orchestrator restarts the process) and say why.
        tokio::time::timeout(REDIS_CONNECT_TIMEOUT, Counters::redis(url, &args.redis.redis_key_prefix))
            .await
            .map_err(|_| anyhow::anyhow!("Redis at {shown} did not answer within {REDIS_CONNECT_TIMEOUT:?}"))?
            .with_context(|| format!("cannot connect to Redis at {shown}"))?
    } else {
        Counters::memory()
    };
    let bus = EventBus::Kafka(Arc::new(KafkaBus::new(&args.kafka)?));
    Ok(Context {
        database,
        db_max_connections: args.database.db_max_connections,
        counters,
        bus,
        keys: Arc::new(keys),
        clock: Clock::System,
        forwarded: Arc::new(args.http.trusted_proxies.clone().unwrap_or_else(ForwardedPolicy::none)),
        stop,
    })
}
