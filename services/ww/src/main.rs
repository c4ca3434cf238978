//! `ww`: see `ww --help`.

/// Every role of `ww` (and the benchmarks' ceiling, the same binary) allocates through mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli: ww::cli::Cli = platform::config::parse_or_exit();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ww::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Connection errors may quote a URL with its password.
            eprintln!("error: {}", platform::config::redact_secrets(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}
