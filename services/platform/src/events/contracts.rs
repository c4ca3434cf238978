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
    /// Verified missions, keyed by user id (published by the mission services).
    pub const MISSIONS_VERIFIED: &str = "missions.verified";
    /// Coupon issuance, keyed by user id (published by coupon issuers; the log of record
    /// the persister writes to SQL and issuers rebuild from).
    pub const COUPONS_ISSUED: &str = "coupons.issued";
    /// Campaign definitions, keyed by campaign name (published by whoever owns them:
    /// the YAML loader in dev, the operator in a cluster).
    pub const CAMPAIGNS: &str = "campaigns.definitions";
    /// Live counts of open campaigns, keyed by campaign name (published by their issuers,
    /// about once a second per campaign while a window is open; read by the operator for
    /// the resource status and by dashboards).
    pub const CAMPAIGN_COUNTS: &str = "campaigns.counts";
    /// Ended login sessions, keyed by session id (published by auth); every process
    /// follows it to refuse the access tokens of those sessions.
    pub const SESSIONS_REVOKED: &str = "sessions.revoked";
    /// Chat messages and their deletions, keyed by room (so a room keeps one order; a
    /// message's offset in its partition is its place in the room). A ChatCluster serves its
    /// rooms on its own topic with this name under its prefix.
    pub const CHAT_MESSAGES: &str = "chat.messages";
}

pub const MISSION_VERIFIED: &str = "MissionVerified";
pub const COUPON_ISSUED: &str = "CouponIssued";
pub const CAMPAIGN_DEFINED: &str = "CampaignDefined";
pub const CAMPAIGN_REMOVED: &str = "CampaignRemoved";
pub const CAMPAIGN_COUNTED: &str = "CampaignCounted";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissionVerified {
    pub user_id: Uuid,
    pub mission_id: String,
    /// Which kind of mission: campaigns count only daily weather missions unless their
    /// eligibility says otherwise. Absent in events from before it existed: `daily`.
    #[serde(default)]
    pub source: MissionSource,
    /// When the proof was submitted (a reviewed mission is announced once approved, with the
    /// time it was done).
    pub verified_at: DateTime<Utc>,
}

/// The kind of a verified mission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissionSource {
    /// Today's weather mission, assigned by the mission service.
    #[default]
    Daily,
    /// A mission a person created (the created-mission service).
    Created,
}

/// One coupon handed out. `(campaign, user_id, seq)` is unique; a re-sent event for the
/// same coupon carries the same `coupon_id`, `code` and `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CouponIssued {
    pub coupon_id: Uuid,
    pub code: String,
    pub campaign: String,
    /// The campaign instance (its resource's uid; empty for a campaign from a file): a
    /// campaign deleted and re-created under the same name is another campaign.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub campaign_uid: String,
    pub user_id: Uuid,
    /// 1 for a person's first coupon of this campaign, 2 for the second, …
    pub seq: u32,
    /// The campaign-local date the unit counted against.
    pub day: chrono::NaiveDate,
    pub title: String,
    pub benefit: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The `Idempotency-Key` the coupon was asked for with: a retry with the same key gets
    /// this coupon, also from an issuer that rebuilt its state from the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A campaign's definition as its owner published it. Within one instance (`uid`),
/// `version` (the resource's generation) orders redefinitions; a definition of another
/// instance replaces the campaign whatever its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignDefined {
    pub name: String,
    pub version: i64,
    /// The `CouponCampaign` spec as JSON (see the `campaign` crate).
    pub spec: serde_json::Value,
    /// The resource's namespace (empty for a campaign from a file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The resource's uid (empty for a campaign from a file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// A campaign was deleted. Coupons already issued stay valid; `totals` are the counts the
/// operator last saw (absent when it never saw any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignRemoved {
    pub name: String,
    pub version: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<CampaignTotals>,
}

/// A campaign's final counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignTotals {
    pub issued_total: u64,
    /// When the issuers counted them.
    pub counted_at: DateTime<Utc>,
}

/// A campaign's counts as its issuers see them in their shared state, at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignCounted {
    pub name: String,
    /// The resource's uid (empty for a campaign from a file): the operator matches counts to
    /// the resource by it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The campaign-local day the daily counts are for.
    pub day: chrono::NaiveDate,
    pub issued_today: u64,
    /// `None` before the day's stock is seeded at its opening.
    pub remaining_today: Option<u64>,
    pub issued_total: u64,
    pub at: DateTime<Utc>,
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

pub const SESSION_REVOKED: &str = "SessionRevoked";

pub const CHAT_MESSAGE_SENT: &str = "ChatMessageSent";
pub const CHAT_MESSAGE_DELETED: &str = "ChatMessageDeleted";

/// A chat message as its gateway published it. `id` derives from (user, the client's message
/// id): a retried send is the same message, shown and stored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageSent {
    pub id: Uuid,
    pub room: String,
    pub user_id: Uuid,
    pub nickname: String,
    pub text: String,
    pub sent_at: DateTime<Utc>,
}

/// A moderator removed a message; published on the room's key, so it follows the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageDeleted {
    pub id: Uuid,
    pub room: String,
    pub deleted_by: Uuid,
    pub deleted_at: DateTime<Utc>,
}

/// A login session ended (logout, logout everywhere, password change, refresh-token
/// reuse). Access tokens of the session must be refused until `expires_at`, after which
/// none of them can still be valid anyway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRevoked {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub revoked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
