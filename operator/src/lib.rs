//! The WeatherWise operator. This first part holds the custom resource definitions as the API
//! server receives them; `crdgen` writes them to `crds/`.

pub mod crds;
