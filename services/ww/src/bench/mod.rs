//! `ww bench ...`: benchmarks run against real processes on this machine (127.0.0.1
//! only), bounded in time, printing figures beside a ceiling measured in the same run.

pub mod ceiling;
pub mod coupon;
pub mod http;
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

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Http(args) => http::run(args).await,
        BenchCommand::Coupon(args) => coupon::run(args).await,
    }
}
