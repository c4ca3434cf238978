//! `ww-operator`: see `ww-operator --help`.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ww-operator", version, about = "The WeatherWise operator: CouponCampaign resources into pre-warmed, autoscaled issuers.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the objects the operator would apply for campaigns at an instant, as YAML.
    Render(Box<operator::render::RenderArgs>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => operator::render::render(&args).map(|yaml| print!("{yaml}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
