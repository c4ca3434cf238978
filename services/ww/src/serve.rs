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

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    platform::telemetry::init(args.log_format);
    if args.services.contains(&ServiceName::CouponIssuer) && args.services_config.issuer.campaign.is_none() {
        anyhow::bail!("the coupon-issuer role serves one campaign: set --campaign or WW_CAMPAIGN");
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
    let counters = if args.services.iter().any(|s| matches!(s, ServiceName::Auth | ServiceName::CouponIssuer)) {
        let url = args
            .redis
            .redis_url
            .as_deref()
            .context("auth and coupon-issuer need Redis: set WW_REDIS_URL (redis://…)")?;
        Counters::redis(url, &args.redis.redis_key_prefix)
            .await
            .with_context(|| format!("cannot connect to Redis at {url}"))?
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
        forwarded: Arc::new(ForwardedPolicy { trust_forwarded_for: args.http.trust_forwarded_for }),
        stop,
    })
}
