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
    if args.services.contains(&ServiceName::CouponIssuer) && args.services_config.issuer.campaign.is_none() {
        anyhow::bail!("the coupon-issuer role serves one campaign: set --campaign or WW_CAMPAIGN");
    }
    if args.services.contains(&ServiceName::Auth) && args.http.trusted_proxies.is_none() {
        // Login limits are per client address; guessing the proxy setup wrong either lets
        // anyone pick their address (trusting too much) or puts everyone behind the
        // ingress in one bucket (trusting too little). Make the deployment say it.
        anyhow::bail!(
            "the auth role limits logins per client address and needs a stated proxy policy: set \
             --trusted-proxies or WW_TRUSTED_PROXIES to the CIDR ranges of the ingress/load balancer \
             in front of it (e.g. 10.0.0.0/8), or to `none` when clients connect directly"
        );
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
