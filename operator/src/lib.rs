//! The WeatherWise operator: the custom resource definitions as the API server receives them
//! (`crdgen` writes them to `crds/`), the children a campaign owns, and `render`, which prints
//! them without a cluster.

pub mod children;
pub mod config;
pub mod crds;
pub mod render;
