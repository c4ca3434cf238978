//! The command line: `ww serve`, `ww dev`, `ww bench`. Every flag also reads an
//! environment variable, named in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use platform::config::{HttpConfig, JwtConfig};
use platform::counters::RedisConfig;
use platform::db::DatabaseConfig;
use platform::events::KafkaConfig;
use platform::telemetry::LogFormat;

use crate::bench;

#[derive(Debug, Parser)]
#[command(
    name = "ww",
    version,
    about = "WeatherWise: weather, missions, coupons and chat on Kubernetes.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the named services against PostgreSQL, Redis and Kafka (production).
    Serve(Box<ServeArgs>),
    /// Run every service in one process on embedded backends: no infrastructure needed.
    Dev(Box<DevArgs>),
    /// Operator tasks on the databases (`WW_DATABASE_URL`), e.g. granting roles.
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
    /// Check a CouponCampaign as the API server and the operator will, or preview its coming days.
    #[command(subcommand)]
    Campaign(crate::campaign_cmd::CampaignCommand),
    /// Rerunnable benchmarks that print figures, ratios against a ceiling measured in
    /// the same run, and with --json one JSON object as the last line.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Helpers the benchmarks start as separate processes.
    #[command(subcommand, hide = true)]
    Internal(InternalCommand),
}

pub use crate::roles::ServiceName;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The services to run in this process.
    #[arg(required = true, value_enum, env = "WW_SERVICES", value_delimiter = ',')]
    pub services: Vec<ServiceName>,
    /// Address to listen on.
    #[arg(long, env = "WW_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Log format.
    #[arg(long, env = "WW_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Check that every setting the services need is given, print what is missing, and exit
    /// without connecting to anything (for a Helm test hook, or to check a manifest's wiring).
    #[arg(long)]
    pub check_config: bool,
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub jwt: JwtConfig,
    #[command(flatten)]
    pub services_config: ServiceConfig,
}

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Address to listen on.
    #[arg(long, env = "WW_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Allow a --listen address other than loopback (the dev-only endpoints become
    /// reachable from other machines).
    #[arg(long, env = "WW_DEV_ALLOW_NON_LOOPBACK", default_value_t = false)]
    pub allow_non_loopback: bool,
    /// Where the embedded databases, event log and signing key are kept across restarts.
    #[arg(long, env = "WW_DATA_DIR", default_value = ".ww-data")]
    pub data_dir: PathBuf,
    /// Log format.
    #[arg(long, env = "WW_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub services_config: ServiceConfig,
}

impl ServiceConfig {
    /// The weather provider when none is configured: simulated under `ww dev`.
    pub fn default_weather_provider(&self) -> weather::ProviderKind {
        if self.embedded { weather::ProviderKind::Simulated } else { weather::ProviderKind::OpenMeteo }
    }
}

/// Settings of the individual services.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServiceConfig {
    #[command(flatten)]
    pub auth: auth::AuthConfig,
    #[command(flatten)]
    pub user: user::UserConfig,
    #[command(flatten)]
    pub issuer: coupon::IssuerConfig,
    #[command(flatten)]
    pub chat: chat::ChatConfig,
    #[command(flatten)]
    pub weather: weather::WeatherConfig,
    #[command(flatten)]
    pub mission: mission::MissionConfig,
    #[command(flatten)]
    pub board: board::BoardConfig,
    /// Set by `ww dev`: defaults that need no network (the simulated weather provider).
    #[arg(skip)]
    pub embedded: bool,
    /// Set by `ww dev`: its data directory (local proof photos default to `proofs` in it).
    #[arg(skip)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Set by `app::build`: the issuers run in this process, so the coupon role does not answer
    /// for them.
    #[arg(skip)]
    pub issuers_in_process: bool,
}

#[derive(Debug, Subcommand)]
pub enum InternalCommand {
    /// A minimal axum server: the ceiling benchmarks compare against.
    Ceiling {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// A storm of issue requests from a process of its own (`ww bench isolation`), so the
    /// clients measuring the steady roles do not share a runtime with it.
    Storm(crate::bench::isolation::StormArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(*args).await,
        Command::Dev(args) => crate::dev::run(*args).await,
        Command::Admin(cmd) => crate::admin::run(cmd).await,
        Command::Campaign(cmd) => crate::campaign_cmd::run(cmd),
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Internal(InternalCommand::Ceiling { listen }) => bench::ceiling::serve(listen).await,
        Command::Internal(InternalCommand::Storm(args)) => bench::isolation::storm_process(args).await,
    }
}
