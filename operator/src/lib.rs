//! The WeatherWise operator: the custom resource definitions as the API server receives them
//! (`crdgen` writes them to `crds/`), the children a campaign owns, the controller that keeps
//! them as the campaign's plan says, leader election, and `render`, which prints the children
//! without a cluster. On the event bus it announces campaigns (`announce`) and reads their
//! issuers' counts (`counters`). `chat` is the ChatCluster controller: its resource, children,
//! Kafka topic, gateway autoscaling and status.

pub mod announce;
pub mod apply;
pub mod bench;
pub mod chat;
pub mod children;
pub mod config;
pub mod controller;
pub mod counters;
pub mod crds;
pub mod http;
pub mod leader;
pub mod render;
pub mod run;
pub mod standin;
pub mod status;
