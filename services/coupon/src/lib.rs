//! First-come coupon campaigns, in two roles:
//! - `coupon-issuer` ([`issuer`]): the per-event workload the operator deploys for one
//!   campaign; answers the burst at `POST /api/campaigns/{campaign}/issue`.
//! - `coupon` ([`start`]): steady state — the catalog, your wallet, redemption, and the
//!   persister that writes `CouponIssued` events to SQL.
//!
//! Campaign rules come from the `campaign` crate; definitions arrive as events from
//! whoever owns them (the YAML loader in dev, the operator in a cluster), eligibility as
//! `MissionVerified` events — never from a synchronous call.

pub mod audit;
pub mod catalog;
pub mod dev;
pub mod fallback;
pub mod issuer;
pub mod model;
mod persister;
mod store;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use campaign::Campaign;
use platform::db::Database;
use platform::events::contracts::{CAMPAIGN_DEFINED, CampaignDefined, topics};
use platform::events::{Envelope, EventBus};
use platform::service::{Context, Started};
use utoipa::OpenApi;

pub use issuer::IssuerConfig;

pub const SERVICE: &str = "coupon";

/// Campaign rules shared by the tasks of one issuer.
pub type CampaignRef = Arc<Campaign>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(OpenApi)]
#[openapi(
    paths(catalog::campaigns, catalog::my_coupons, catalog::redeem),
    tags((name = "coupons", description = "Campaigns, your coupons, redemption"))
)]
struct CatalogDoc;

#[derive(OpenApi)]
#[openapi(paths(fallback::issue))]
struct FallbackDoc;

#[derive(OpenApi)]
#[openapi(
    paths(issuer::http::issue, issuer::http::counters),
    tags((name = "coupon-issuer", description = "First-come issuance of one campaign (a per-event workload)"))
)]
struct IssuerDoc;

const TOPICS: &[&str] =
    &[topics::COUPONS_ISSUED, topics::CAMPAIGNS, topics::CAMPAIGN_COUNTS, topics::MISSIONS_VERIFIED];

/// The steady-state `coupon` role. With `answer_for_issuers` it also answers
/// `POST /api/campaigns/{name}/issue` for campaigns whose issuers are not running
/// ([`fallback`]); a process that runs the issuers itself (`ww dev`) leaves that to them.
pub async fn start(ctx: &Context, answer_for_issuers: bool) -> anyhow::Result<Started> {
    let db = Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await?;
    ctx.bus.ensure_topics(TOPICS).await?;
    let persister = ctx.bus.spawn_consumer(
        "coupon.persister",
        &[topics::COUPONS_ISSUED],
        persister::Persister { db: db.clone() },
        ctx.stop.clone(),
    );
    let definitions = ctx.bus.spawn_consumer(
        "coupon.campaigns",
        &[topics::CAMPAIGNS],
        persister::Definitions { db: db.clone() },
        ctx.stop.clone(),
    );
    let state = catalog::CatalogState { db: db.clone(), keys: ctx.keys.clone(), clock: ctx.clock.clone() };
    let mut router = catalog::router(state.clone());
    let mut openapi = CatalogDoc::openapi();
    if answer_for_issuers {
        router = router.merge(fallback::router(state));
        openapi.merge(FallbackDoc::openapi());
    }
    Ok(Started {
        name: SERVICE,
        router,
        openapi,
        readiness: vec![db.readiness(), ctx.bus.readiness()],
        tasks: vec![persister, definitions],
    })
}

/// The `coupon-issuer` role for `campaigns` (one in production; every sample in dev).
pub async fn start_issuers(
    ctx: &Context,
    campaigns: Vec<Campaign>,
    config: &IssuerConfig,
) -> anyhow::Result<(Started, issuer::Issuers)> {
    let db = Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await?;
    ctx.bus.ensure_topics(TOPICS).await?;
    let mut issuers = HashMap::new();
    let mut readiness = vec![db.readiness(), ctx.bus.readiness()];
    readiness.extend(ctx.counters.readiness());
    for campaign in campaigns {
        let name = campaign.name().to_owned();
        let engine = match ctx.counters.redis_connection() {
            Some((conn, prefix)) => {
                issuer::engine::Engine::redis(conn, &prefix, &state_key(&campaign), ctx.clock.clone())
            }
            None => issuer::engine::Engine::memory(ctx.clock.clone()),
        };
        let engine = match config.time_shift {
            Some(shift) => engine.shifted(shift),
            None => engine,
        };
        let issuer =
            issuer::Issuer::new(Arc::new(campaign), engine, ctx.bus.clone(), db.clone(), config, ctx.stop.clone());
        issuer.start().await?;
        let check = issuer.clone();
        readiness.push(platform::http::ReadinessCheck::new(format!("issuer:{name}"), move || {
            let issuer = check.clone();
            async move { issuer.not_ready_reason().map_or(Ok(()), |why| Err(why.to_owned())) }
        }));
        tracing::info!(campaign = %name, "issuer started");
        issuers.insert(name, issuer);
    }
    let issuers: issuer::Issuers = Arc::new(issuers);
    let router = issuer::router(issuer::IssuerState { issuers: issuers.clone(), keys: ctx.keys.clone() });
    Ok((
        Started { name: "coupon-issuer", router, openapi: IssuerDoc::openapi(), readiness, tasks: Vec::new() },
        issuers,
    ))
}

/// The campaign's key in the issuers' shared state: its name, and its uid when it has one (a
/// campaign deleted and re-created starts from empty state, its predecessor's winners unknown).
fn state_key(campaign: &Campaign) -> String {
    match campaign.uid() {
        "" => campaign.name().to_owned(),
        uid => format!("{}:{uid}", campaign.name()),
    }
}

/// The coupon service's migrations (the benchmark opens its database directly).
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// The coupon service's database (tests, audits and benchmarks read it).
pub async fn open_db(ctx: &Context) -> anyhow::Result<Database> {
    Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await
}

/// The campaign rules an issuer serves, from `--campaign-file` or `--campaigns-dir`,
/// narrowed to `--campaign` when given.
pub fn load_campaigns(config: &IssuerConfig) -> anyhow::Result<Vec<Campaign>> {
    let all = match &config.campaign_file {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            campaign::parse_yaml(&text).with_context(|| format!("in {}", file.display()))?
        }
        None => campaign::load_dir(&config.campaigns_dir)
            .with_context(|| format!("in {}", config.campaigns_dir.display()))?,
    };
    match &config.campaign {
        None => Ok(all),
        Some(name) => {
            let names: Vec<String> = all.iter().map(|c| c.name().to_owned()).collect();
            let found: Vec<Campaign> = all.into_iter().filter(|c| c.name() == name).collect();
            anyhow::ensure!(!found.is_empty(), "campaign `{name}` not found (have: {})", names.join(", "));
            Ok(found)
        }
    }
}

/// Announces campaign definitions (what the operator does in a cluster; the YAML loader
/// in dev). `version` orders redefinitions: the highest wins.
pub async fn publish_definitions(bus: &EventBus, campaigns: &[Campaign], version: i64) -> anyhow::Result<()> {
    bus.ensure_topics(&[topics::CAMPAIGNS]).await?;
    for c in campaigns {
        let defined = CampaignDefined {
            name: c.name().to_owned(),
            version,
            spec: serde_json::to_value(c.spec())?,
            namespace: String::new(),
            uid: c.uid().to_owned(),
        };
        let event = Envelope::new(CAMPAIGN_DEFINED, "campaign-loader", chrono::Utc::now(), &defined)?;
        bus.publish(topics::CAMPAIGNS, c.name(), &event).await?;
    }
    Ok(())
}
