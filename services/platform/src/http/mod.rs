//! The HTTP stack shared by every service: extractors that answer problem+json,
//! health and metrics endpoints, limits (body size, timeout, in-flight bound) and a
//! server that drains in-flight requests on SIGTERM.

pub mod client_ip;
pub mod extract;
pub mod health;
pub mod layers;
pub mod metrics;
pub mod server;

pub use client_ip::{ClientIp, ForwardedPolicy};
pub use extract::{Json, Path, Query};
pub use health::{Readiness, ReadinessCheck};
pub use server::{HttpSettings, Server, shutdown_signal};
