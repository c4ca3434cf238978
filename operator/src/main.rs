//! `ww-operator`: see `ww-operator --help`.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ww-operator",
    version,
    about = "The WeatherWise operator: CouponCampaign resources into pre-warmed, autoscaled issuers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller (behind a leader lease) against the cluster of the kubeconfig or the
    /// in-cluster service account.
    Run(Box<operator::run::RunArgs>),
    /// Print the objects the operator would apply for campaigns at an instant, and for chat
    /// clusters, as YAML.
    Render(Box<operator::render::RenderArgs>),
    /// Reconcile N campaigns against an API-server stand-in in its own process and report
    /// convergence time, reconciles/s, steady-state writes, status writes/min and peak RSS.
    Bench(operator::bench::BenchArgs),
    /// The in-memory API-server stand-in the benchmark starts as its own process.
    #[command(hide = true)]
    Standin(operator::bench::StandInArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Render(args) => operator::render::render(&args).map(|yaml| print!("{yaml}")),
        Command::Bench(args) => block_on(operator::bench::run(args)),
        Command::Standin(args) => block_on(operator::bench::standin(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: operator::run::RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().ok();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(operator::run::run(args, metrics))
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(future)
}
