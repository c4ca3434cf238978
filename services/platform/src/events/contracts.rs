//! Event types and topics that cross service boundaries. A consumer depends on these
//! shapes, never on the publishing service's crate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Topics, keyed by the entity whose order matters.
pub mod topics {
    /// Account lifecycle, keyed by user id (published by auth).
    pub const IDENTITY: &str = "identity.users";
    /// Profile changes, keyed by user id (published by user).
    pub const PROFILES: &str = "profiles.users";
}

pub const USER_REGISTERED: &str = "UserRegistered";
pub const USER_PROFILE_UPDATED: &str = "UserProfileUpdated";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRegistered {
    pub user_id: Uuid,
    pub email: String,
    pub nickname: String,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfileUpdated {
    pub user_id: Uuid,
    pub nickname: String,
    pub home_lat: Option<f64>,
    pub home_lon: Option<f64>,
    pub time_zone: String,
    pub updated_at: DateTime<Utc>,
}
