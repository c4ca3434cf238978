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

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Http(args) => http::run(args).await,
        BenchCommand::Coupon(args) => coupon::run(args).await,
    }
}
