//! The shared platform every WeatherWise service is built on: configuration, telemetry,
//! the HTTP stack (problem+json errors, health, metrics, limits), JWT authentication,
//! SQL storage, the event bus, counters and the OpenAPI description.
//!
//! Backends come in pairs with one semantics: PostgreSQL | SQLite, Kafka | embedded log,
//! Redis | in-memory. Services are written against the pair, never against one side.

pub mod auth;
pub mod clock;
pub mod config;
pub mod counters;
pub mod db;
pub mod error;
pub mod events;
pub mod http;
pub mod openapi;
pub mod roles;
pub mod service;
pub mod sessions;
pub mod telemetry;
pub mod testing;
pub mod trace;
pub mod validate;

pub use error::ApiError;
