//! The WeatherWise service binary as a library: the CLI, wiring services to backends,
//! the embedded dev mode and the benchmarks. `main.rs` only parses and dispatches, so
//! tests build exactly what the binary runs.

pub mod admin;
pub mod app;
pub mod bench;
pub mod campaign_cmd;
pub mod cli;
pub mod dev;
pub mod roles;
pub mod serve;
