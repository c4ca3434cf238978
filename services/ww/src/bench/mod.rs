//! `ww bench ...`: benchmarks run against real processes on this machine (127.0.0.1
//! only), bounded in time, printing figures beside a ceiling measured in the same run.

pub mod broker;
pub mod ceiling;
pub mod chat;
pub mod coupon;
pub mod cpu;
pub mod dashboard;
pub mod http;
pub mod isolation;
pub mod load;
pub mod proc;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// `GET /api/users/me` and login against `ww serve auth user` on PostgreSQL, Redis
    /// and Kafka, beside a minimal axum handler hit by the same client.
    Http(http::HttpBenchArgs),
    /// A coupon event against `ww serve coupon-issuer` and `ww serve coupon` on
    /// PostgreSQL, Redis and Kafka, with every invariant checked against SQL afterwards.
    Coupon(coupon::CouponBenchArgs),
    /// Chat: WebSocket clients in rooms against `ww serve chat-gateway` processes and the
    /// persister on PostgreSQL, Redis and Kafka, beside an in-process gateway on the
    /// in-memory bus; every acknowledged message looked for in SQL afterwards.
    Chat(chat::ChatBenchArgs),
    /// The Kafka broker alone at the chat benchmark's rate: keyed appends read back by live
    /// tails and a consumer group in this process, beside the in-memory bus — the part of
    /// `ww bench chat`'s latency that is the broker's.
    Broker(broker::BrokerBenchArgs),
    /// Live dashboards: `ww serve web` streaming the counts to `--viewers` open dashboards while
    /// `ww serve coupon-issuer` takes a load, beside the same load with no dashboard open; the
    /// web process's CPU per delivered frame; the coupons audited in SQL afterwards.
    Dashboard(dashboard::DashboardBenchArgs),
    /// The reason the platform exists: login and `/me` p99 before and during a coupon storm,
    /// with the steady roles and the issuer as separate processes under cgroup CPU quotas (also
    /// with the issuer on its own Redis), beside every role in one process under the same total
    /// CPU (the monolith of the replaced system); the coupons audited in SQL afterwards.
    Isolation(isolation::IsolationBenchArgs),
}

/// Where the benchmarks' services keep their state: local backends by default.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchBackends {
    /// PostgreSQL database of the services under test (created when missing).
    #[arg(long, env = "WW_BENCH_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/ww_bench")]
    pub database_url: String,
    /// Redis the services under test use (keys are prefixed `ww-bench:`).
    #[arg(long, env = "WW_BENCH_REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
    /// Kafka brokers the services under test use (topics are prefixed per run).
    #[arg(long, env = "WW_BENCH_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
}

impl BenchBackends {
    /// The environment of a `ww serve` child on these backends, with this run's own Redis
    /// key prefix and Kafka topic/group prefix, quiet logs, and `extra` on top.
    pub fn child_env(&self, run_id: &str, jwt_secret: &str, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let base = [
            ("WW_DATABASE_URL", self.database_url.clone()),
            ("WW_REDIS_URL", self.redis_url.clone()),
            ("WW_REDIS_KEY_PREFIX", format!("ww-bench:{run_id}:")),
            ("WW_KAFKA_BROKERS", self.kafka_brokers.clone()),
            ("WW_KAFKA_PREFIX", kafka_prefix(run_id)),
            // One local broker: the production defaults (3 replicas, 2 in sync) cannot be met.
            ("WW_KAFKA_REPLICATION_FACTOR", "1".to_owned()),
            ("WW_KAFKA_MIN_INSYNC_REPLICAS", "1".to_owned()),
            ("WW_JWT_KEYS", format!("bench={jwt_secret}")),
            ("WW_LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        base.iter().chain(extra).map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }
}

impl BenchBackends {
    /// The environment of a `ww serve coupon-issuer` child serving the campaign `name` of `file`,
    /// with no in-flight bound of its own (the benchmark measures the issuer, not the shedding),
    /// and `extra` on top.
    pub fn issuer_env(
        &self,
        run_id: &str,
        jwt_secret: &str,
        name: &str,
        file: &std::path::Path,
        extra: &[(&str, String)],
    ) -> Vec<(String, String)> {
        let mut vars = vec![
            ("WW_CAMPAIGN", name.to_owned()),
            ("WW_CAMPAIGN_FILE", file.display().to_string()),
            ("WW_ISSUE_MAX_IN_FLIGHT", "100000".to_owned()),
        ];
        vars.extend(extra.iter().cloned());
        self.child_env(run_id, jwt_secret, &vars)
    }

    /// The event bus of one run: its own topic prefix, one local broker (replication 1).
    pub fn bus(&self, run_id: &str) -> anyhow::Result<platform::events::EventBus> {
        let kafka = platform::events::KafkaConfig {
            kafka_brokers: Some(self.kafka_brokers.clone()),
            kafka_prefix: kafka_prefix(run_id),
            kafka_group_prefix: None,
            kafka_partitions: 3,
            kafka_replication_factor: 1,
            kafka_min_insync_replicas: 1,
            kafka_message_timeout_ms: 10_000,
        };
        Ok(platform::events::EventBus::Kafka(std::sync::Arc::new(platform::events::KafkaBus::new(&kafka)?)))
    }

    /// Waits (at most 180 s) until `expected` coupons of the campaign in `file` are stored, then
    /// checks every invariant against what the clients were `told` (`eligible`: who could claim,
    /// by day, when eligibility matters). Returns the broken ones, as sentences.
    pub async fn audit_coupons(
        &self,
        file: &std::path::Path,
        told: std::collections::HashSet<uuid::Uuid>,
        expected: u64,
        eligible: Option<&std::collections::HashMap<chrono::NaiveDate, std::collections::HashSet<uuid::Uuid>>>,
    ) -> anyhow::Result<Vec<String>> {
        let campaign = ::coupon::load_campaigns(&::coupon::IssuerConfig {
            campaign_file: Some(file.to_owned()),
            ..Default::default()
        })?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no campaign in {}", file.display()))?;
        let db = platform::db::Database::open(
            &platform::db::DatabaseUrl::Postgres(self.database_url.clone()),
            ::coupon::SERVICE,
            4,
            ::coupon::migrator(),
        )
        .await?;
        let started = std::time::Instant::now();
        let mut stored = 0;
        while started.elapsed() < std::time::Duration::from_secs(180) {
            stored = ::coupon::audit::stored_count(&db, campaign.name(), "").await?;
            if stored >= i64::try_from(expected)? {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut violations =
            ::coupon::audit::violations(&db, &campaign, &::coupon::audit::Told { coupons: told }, eligible).await?;
        if stored != i64::try_from(expected)? {
            violations.push(format!("{expected} coupons answered 201, {stored} stored"));
        }
        db.pool.close().await;
        Ok(violations)
    }
}

/// Writes, into a new folder of `run_id`'s, a campaign open to anyone from a minute ago to the
/// end of today (UTC) with `stock` units; returns the folder and the file.
pub fn open_campaign_file(
    run_id: &str,
    name: &str,
    stock: u64,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    use chrono::Timelike as _;
    let now = chrono::Utc::now();
    let opens =
        (now - chrono::TimeDelta::minutes(1)).with_nanosecond(0).ok_or_else(|| anyhow::anyhow!("no such time"))?;
    anyhow::ensure!(
        opens.date_naive() == now.date_naive() && now.hour() < 23,
        "too close to midnight UTC for a one-day campaign; retry after 00:01 UTC"
    );
    let dir = std::env::temp_dir().join(format!("ww-bench-{run_id}"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("campaign.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: weatherwise.io/v1alpha1\nkind: CouponCampaign\nmetadata:\n  name: {name}\nspec:\n  displayName: Benchmark {name}\n  coupon:\n    title: Bench pass\n    benefit: One free pass\n    validityDays: 7\n  schedule:\n    timeZone: UTC\n    startDate: {day}\n    endDate: {day}\n    opensAt: \"{opens}\"\n    closesAt: \"23:59:59\"\n  quota:\n    dailyQuantity: {stock}\n    perUser: 1\n  eligibility:\n    mission: None\n",
            day = now.date_naive(),
            opens = opens.format("%H:%M:%S"),
        ),
    )?;
    Ok((dir, file))
}

/// Topics and consumer groups of one run: a group reused after its member was killed can
/// stay unassigned on tansu, so every run starts fresh ones.
pub fn kafka_prefix(run_id: &str) -> String {
    format!("bench-{run_id}.")
}

/// A random signing secret for one run's tokens.
pub fn new_secret() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut secret = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Http(args) => http::run(args).await,
        BenchCommand::Coupon(args) => coupon::run(args).await,
        BenchCommand::Chat(args) => chat::run(args).await,
        BenchCommand::Broker(args) => broker::run(args).await,
        BenchCommand::Dashboard(args) => dashboard::run(args).await,
        BenchCommand::Isolation(args) => isolation::run(args).await,
    }
}
