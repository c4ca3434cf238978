//! The `ChatCluster` controller's parts: the resource (`resource`), the objects a cluster owns
//! (`children`, pure), its Kafka topic created or grown through the admin API (`topic`, behind a
//! trait the tests fake), what the gateway autoscaler scales on (`autoscaling`), the status
//! (`status`, pure) and the reconcile loop (`controller`).

pub mod autoscaling;
pub mod children;
pub mod controller;
pub mod resource;
pub mod status;
pub mod topic;

pub use resource::{ChatCluster, ChatClusterSpec, ChatClusterStatus};
