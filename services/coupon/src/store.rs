//! SQL of the coupon service: campaign definitions and coupons.

use chrono::{DateTime, NaiveDate, Utc};
use platform::events::contracts::CouponIssued;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::model::{Coupon, CouponStatus};

/// A campaign instance: its name and its resource's uid (empty for a campaign from a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance<'a> {
    pub name: &'a str,
    pub uid: &'a str,
}

impl<'a> Instance<'a> {
    pub fn of(campaign: &'a campaign::Campaign) -> Self {
        Self { name: campaign.name(), uid: campaign.uid() }
    }
}

/// Stores many coupons in one statement; returns the ids actually written (the others
/// were already stored, or refused by the unique keys).
pub async fn insert_coupons(pool: &AnyPool, events: &[CouponIssued]) -> sqlx::Result<Vec<Uuid>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::from(
        "INSERT INTO coupons (coupon_id, code, campaign, campaign_uid, user_id, seq, day, title, benefit, issued_at, expires_at, idempotency_key) VALUES ",
    );
    sql.push_str(&platform::db::values_rows(events.len(), 12));
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING coupon_id");
    let mut query = sqlx::query(&sql);
    for e in events {
        query = query
            .bind(e.coupon_id.to_string())
            .bind(e.code.clone())
            .bind(e.campaign.clone())
            .bind(e.campaign_uid.clone())
            .bind(e.user_id.to_string())
            .bind(i64::from(e.seq))
            .bind(e.day.to_string())
            .bind(e.title.clone())
            .bind(e.benefit.clone())
            .bind(e.issued_at.timestamp_millis())
            .bind(e.expires_at.timestamp_millis())
            .bind(e.idempotency_key.clone());
    }
    let rows = query.fetch_all(pool).await?;
    Ok(rows.iter().filter_map(|r| r.try_get::<String, _>(0).ok().and_then(|s| Uuid::parse_str(&s).ok())).collect())
}

/// The coupon stored under (campaign instance, user, seq), if any.
pub async fn coupon_at(pool: &AnyPool, campaign: &Instance<'_>, user_id: Uuid, seq: u32) -> sqlx::Result<Option<Uuid>> {
    let row = sqlx::query(
        "SELECT coupon_id FROM coupons WHERE campaign = $1 AND campaign_uid = $2 AND user_id = $3 AND seq = $4",
    )
    .bind(campaign.name)
    .bind(campaign.uid)
    .bind(user_id.to_string())
    .bind(i64::from(seq))
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| Uuid::parse_str(&r.get::<String, _>(0)).ok()))
}

const COLUMNS: &str =
    "coupon_id, code, campaign, user_id, seq, day, title, benefit, issued_at, expires_at, redeemed_at";
/// `{COLUMNS}` and what an issuance event adds (read by [`as_event`]).
const EVENT_COLUMNS: &str = "coupon_id, code, campaign, user_id, seq, day, title, benefit, issued_at, expires_at, \
     redeemed_at, idempotency_key, campaign_uid";

pub async fn coupons_of_user(pool: &AnyPool, user_id: Uuid, now: DateTime<Utc>) -> sqlx::Result<Vec<Coupon>> {
    let rows =
        sqlx::query(&format!("SELECT {COLUMNS} FROM coupons WHERE user_id = $1 ORDER BY issued_at DESC LIMIT 500"))
            .bind(user_id.to_string())
            .fetch_all(pool)
            .await?;
    rows.iter().map(|r| decode(r, now)).collect()
}

/// One person's coupons of one campaign with their idempotency keys, highest `seq` first
/// (through the `(campaign, campaign_uid, user_id, seq)` index; at most `perUser` rows exist).
pub async fn coupons_of_user_in_campaign(
    pool: &AnyPool,
    campaign: &Instance<'_>,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<(Coupon, Option<String>)>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, idempotency_key FROM coupons WHERE campaign = $1 AND campaign_uid = $2 AND user_id = $3 \
         ORDER BY seq DESC"
    ))
    .bind(campaign.name)
    .bind(campaign.uid)
    .bind(user_id.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok((decode(r, now)?, r.try_get::<Option<String>, _>(11)?))).collect()
}

/// Every coupon of a campaign instance, as issuance events (for rebuilding issuer state).
pub async fn issued_in_campaign(pool: &AnyPool, campaign: &Instance<'_>) -> sqlx::Result<Vec<CouponIssued>> {
    let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM coupons WHERE campaign = $1 AND campaign_uid = $2"))
        .bind(campaign.name)
        .bind(campaign.uid)
        .fetch_all(pool)
        .await?;
    rows.iter().map(as_event).collect()
}

/// The coupon stored under (campaign instance, user, seq), as its issuance event.
pub async fn coupon_row(
    pool: &AnyPool,
    campaign: &Instance<'_>,
    user_id: Uuid,
    seq: u32,
) -> sqlx::Result<Option<CouponIssued>> {
    let row = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM coupons WHERE campaign = $1 AND campaign_uid = $2 AND user_id = $3 AND seq = $4"
    ))
    .bind(campaign.name)
    .bind(campaign.uid)
    .bind(user_id.to_string())
    .bind(i64::from(seq))
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(as_event).transpose()
}

/// A row selected as `{EVENT_COLUMNS}`, as the event it was written from.
fn as_event(r: &AnyRow) -> sqlx::Result<CouponIssued> {
    let c = decode(r, Utc::now())?;
    let user: String = r.try_get(3)?;
    Ok(CouponIssued {
        coupon_id: c.coupon_id,
        code: c.code,
        campaign: c.campaign,
        campaign_uid: r.try_get(12)?,
        user_id: Uuid::parse_str(&user).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        seq: c.seq,
        day: c.day,
        title: c.title,
        benefit: c.benefit,
        issued_at: c.issued_at,
        expires_at: c.expires_at,
        idempotency_key: r.try_get::<Option<String>, _>(11)?,
    })
}

/// Coupons counted against `day` per campaign (for the catalog's "remaining today").
pub async fn issued_on(pool: &AnyPool, campaign: &Instance<'_>, day: NaiveDate) -> sqlx::Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) FROM coupons WHERE campaign = $1 AND campaign_uid = $2 AND day = $3")
        .bind(campaign.name)
        .bind(campaign.uid)
        .bind(day.to_string())
        .fetch_one(pool)
        .await?;
    row.try_get(0)
}

pub async fn issued_total(pool: &AnyPool, campaign: &Instance<'_>) -> sqlx::Result<i64> {
    sqlx::query("SELECT COUNT(*) FROM coupons WHERE campaign = $1 AND campaign_uid = $2")
        .bind(campaign.name)
        .bind(campaign.uid)
        .fetch_one(pool)
        .await?
        .try_get(0)
}

pub enum Redeemed {
    Now(Coupon),
    Already(Coupon),
    Expired(Coupon),
    NotFound,
}

/// Marks a coupon of `user_id` redeemed, once, if it has not expired.
pub async fn redeem(pool: &AnyPool, user_id: Uuid, coupon_id: Uuid, now: DateTime<Utc>) -> sqlx::Result<Redeemed> {
    let done = sqlx::query(
        "UPDATE coupons SET redeemed_at = $1 WHERE coupon_id = $2 AND user_id = $3 AND redeemed_at IS NULL AND expires_at > $1",
    )
    .bind(now.timestamp_millis())
    .bind(coupon_id.to_string())
    .bind(user_id.to_string())
    .execute(pool)
    .await?;
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM coupons WHERE coupon_id = $1 AND user_id = $2"))
        .bind(coupon_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else { return Ok(Redeemed::NotFound) };
    let coupon = decode(&row, now)?;
    Ok(if done.rows_affected() == 1 {
        Redeemed::Now(coupon)
    } else if coupon.status == CouponStatus::Expired {
        Redeemed::Expired(coupon)
    } else {
        Redeemed::Already(coupon)
    })
}

fn decode(r: &AnyRow, now: DateTime<Utc>) -> sqlx::Result<Coupon> {
    let bad = |e: String| sqlx::Error::Decode(e.into());
    let id: String = r.try_get(0)?;
    let day: String = r.try_get(5)?;
    let seq: i64 = r.try_get(4)?;
    let issued: i64 = r.try_get(8)?;
    let expires: i64 = r.try_get(9)?;
    let redeemed: Option<i64> = r.try_get(10)?;
    let expires_at = DateTime::from_timestamp_millis(expires).ok_or_else(|| bad("expires_at".into()))?;
    let redeemed_at = redeemed.and_then(DateTime::from_timestamp_millis);
    let status = if redeemed_at.is_some() {
        CouponStatus::Redeemed
    } else if expires_at <= now {
        CouponStatus::Expired
    } else {
        CouponStatus::Active
    };
    Ok(Coupon {
        coupon_id: Uuid::parse_str(&id).map_err(|e| bad(e.to_string()))?,
        code: r.try_get(1)?,
        campaign: r.try_get(2)?,
        seq: u32::try_from(seq).map_err(|e| bad(e.to_string()))?,
        day: day.parse().map_err(|e: chrono::ParseError| bad(e.to_string()))?,
        title: r.try_get(6)?,
        benefit: r.try_get(7)?,
        issued_at: DateTime::from_timestamp_millis(issued).ok_or_else(|| bad("issued_at".into()))?,
        expires_at,
        redeemed_at,
        status,
    })
}

/// A stored campaign definition.
#[derive(Debug, Clone)]
pub struct StoredCampaign {
    pub name: String,
    pub uid: String,
    pub spec: String,
}

impl StoredCampaign {
    pub fn instance(&self) -> Instance<'_> {
        Instance { name: &self.name, uid: &self.uid }
    }
}

/// Stores a campaign definition. Within one instance the higher version wins (also over a
/// removal, which carries the version it removed); another instance replaces a removed
/// campaign only (the old one's `CampaignRemoved` comes first: the operator publishes it
/// before the resource is gone, on the same key), so a late definition of a deleted
/// instance never replaces its successor. A row without a uid (from a file, or stored before
/// campaigns had one) is taken over by the first definition that names one.
pub async fn upsert_campaign(pool: &AnyPool, instance: &Instance<'_>, version: i64, spec: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO campaigns (name, uid, version, spec, removed) VALUES ($1, $2, $3, $4, 0) \
         ON CONFLICT (name) DO UPDATE SET uid = excluded.uid, version = excluded.version, spec = excluded.spec, \
         removed = 0 \
         WHERE (campaigns.uid = excluded.uid AND campaigns.version < excluded.version) \
            OR (campaigns.uid <> excluded.uid AND (campaigns.removed = 1 OR campaigns.uid = ''))",
    )
    .bind(instance.name)
    .bind(instance.uid)
    .bind(version)
    .bind(spec)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks a campaign instance removed at `version` (its coupons stay valid): a definition of
/// it at that version or below, arriving later, is ignored. A removal of an instance never
/// stored leaves a removed row, so a late definition of it cannot bring it in either; a
/// removal of another instance than the one stored changes nothing.
pub async fn remove_campaign(pool: &AnyPool, instance: &Instance<'_>, version: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO campaigns (name, uid, version, spec, removed) VALUES ($1, $2, $3, 'null', 1) \
         ON CONFLICT (name) DO UPDATE SET removed = 1, version = excluded.version \
         WHERE campaigns.uid = excluded.uid AND campaigns.version <= excluded.version",
    )
    .bind(instance.name)
    .bind(instance.uid)
    .bind(version)
    .execute(pool)
    .await?;
    Ok(())
}

/// One campaign's definition, unless removed.
pub async fn campaign(pool: &AnyPool, name: &str) -> sqlx::Result<Option<StoredCampaign>> {
    let row = sqlx::query("SELECT name, uid, spec FROM campaigns WHERE name = $1 AND removed = 0")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    row.map(|r| Ok(StoredCampaign { name: r.try_get(0)?, uid: r.try_get(1)?, spec: r.try_get(2)? })).transpose()
}

/// Every campaign not removed, by name.
pub async fn campaigns(pool: &AnyPool) -> sqlx::Result<Vec<StoredCampaign>> {
    let rows =
        sqlx::query("SELECT name, uid, spec FROM campaigns WHERE removed = 0 ORDER BY name").fetch_all(pool).await?;
    rows.iter().map(|r| Ok(StoredCampaign { name: r.try_get(0)?, uid: r.try_get(1)?, spec: r.try_get(2)? })).collect()
}
