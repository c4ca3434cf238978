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
    let missing = missing_settings(&args);
    if args.check_config {
        if missing.is_empty() {
            println!("configuration complete for {:?}", args.services);
            return Ok(());
        }
        anyhow::bail!("configuration incomplete for {:?}:\n- {}", args.services, missing.join("\n- "));
    }
    platform::telemetry::init(args.log_format);
    if !missing.is_empty() {
        anyhow::bail!(missing.join("; "));
    }
    let stop = shutdown_signal();
    let ctx = context(&args, stop.clone()).await?;
    let app = app::build(&args.services, &ctx, &args.services_config, &args.http.settings()).await?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, services = ?args.services, "serving");
    app.run(listener, stop).await
}

/// Every setting the roles in `args` need that is missing, each naming the variable to set: what
/// each role needs said (see `crate::roles`), then the backends and keys every role uses.
pub fn missing_settings(args: &ServeArgs) -> Vec<String> {
    let mut missing: Vec<String> =
        args.services.iter().filter_map(|s| (s.role().missing)(args)).map(str::to_owned).collect();
    if args.database.database_url.is_none() {
        missing.push("no database configured: set WW_DATABASE_URL (postgres://…)".to_owned());
    }
    if let Err(e) = JwtKeys::from_config(&args.jwt) {
        missing.push(format!("the token keys: {e} (WW_JWT_KEYS)"));
    }
    let needs_redis: Vec<ServiceName> = args.services.iter().copied().filter(|s| s.role().redis).collect();
    if !needs_redis.is_empty() && args.redis.redis_url.is_none() {
        missing.push(format!("{needs_redis:?} need Redis: set WW_REDIS_URL (redis://…)"));
    }
    if args.kafka.kafka_brokers.is_none() {
        missing.push("no Kafka brokers configured: set WW_KAFKA_BROKERS (host:9092,…)".to_owned());
    }
    missing
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
