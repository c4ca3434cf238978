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
