//! The shared platform every WeatherWise service is built on: configuration, telemetry,
//! the HTTP stack (problem+json errors, health, metrics, limits), JWT authentication,
//! SQL storage, the event bus, counters and the OpenAPI description.
//!
//! Without the `storage` feature (the operator) the crate has no SQL, no Redis and no
//! embedded log: configuration, telemetry, HTTP, JWT and the Kafka bus only.
//!
//! Backends come in pairs with one semantics: PostgreSQL | SQLite, Kafka | embedded log,
//! Redis | in-memory. Services are written against the pair, never against one side.

pub mod auth;
pub mod clock;
pub mod config;
#[cfg(feature = "storage")]
pub mod counters;
pub mod cursor;
#[cfg(feature = "storage")]
pub mod db;
pub mod error;
pub mod events;
pub mod http;
pub mod openapi;
pub mod roles;
#[cfg(feature = "storage")]
pub mod service;
pub mod sessions;
pub mod telemetry;
pub mod testing;
pub mod trace;
pub mod ttl;
pub mod validate;

pub use error::ApiError;
