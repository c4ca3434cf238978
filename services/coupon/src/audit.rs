//! The invariants of first-come issuance, checked against the database: what tests and
//! every benchmark run end with.

use std::collections::{HashMap, HashSet};

use campaign::Campaign;
use chrono::NaiveDate;
use platform::db::Database;
use uuid::Uuid;

use crate::store;

/// What the clients were told, to compare with the rows.
#[derive(Debug, Default)]
pub struct Told {
    /// Coupon ids answered with 201 (or handed back in a 409).
    pub coupons: HashSet<Uuid>,
}

/// Every broken invariant, as a sentence; empty when all hold.
pub async fn violations(
    db: &Database,
    campaign: &Campaign,
    told: &Told,
    eligible: Option<&HashMap<NaiveDate, HashSet<Uuid>>>,
) -> anyhow::Result<Vec<String>> {
    let rows = store::issued_in_campaign(&db.pool, &store::Instance::of(campaign)).await?;
    let spec = campaign.spec();
    let mut out = Vec::new();
    let mut per_day: HashMap<NaiveDate, u64> = HashMap::new();
    let mut per_user: HashMap<Uuid, u64> = HashMap::new();
    let mut stored = HashSet::new();
    for row in &rows {
        *per_day.entry(row.day).or_default() += 1;
        *per_user.entry(row.user_id).or_default() += 1;
        stored.insert(row.coupon_id);
        // 4. only inside the window of the day it counted against.
        let in_window = campaign.day_of(row.issued_at) == row.day
            && campaign.opening(row.day) <= row.issued_at
            && row.issued_at < campaign.closing(row.day)
            && row.day >= spec.schedule.start_date
            && row.day <= spec.schedule.end_date;
        if !in_window {
            out.push(format!(
                "coupon {} issued at {} is outside the window of {}",
                row.coupon_id, row.issued_at, row.day
            ));
        }
        // 3. only eligible people.
        if let Some(eligible) = eligible
            && !eligible.get(&row.day).is_some_and(|s| s.contains(&row.user_id))
        {
            out.push(format!("coupon {} went to {} who was not eligible on {}", row.coupon_id, row.user_id, row.day));
        }
        // 5. no row that no client was told about.
        if !told.coupons.contains(&row.coupon_id) {
            out.push(format!("coupon {} is stored but no client was told about it", row.coupon_id));
        }
    }
    // 1. per day and in total.
    for (day, n) in &per_day {
        if *n > u64::from(spec.quota.daily_quantity) {
            out.push(format!("{n} coupons on {day}, over the daily quantity {}", spec.quota.daily_quantity));
        }
    }
    if let Some(total) = spec.quota.total_quantity
        && rows.len() as u64 > total
    {
        out.push(format!("{} coupons in total, over the total quantity {total}", rows.len()));
    }
    // 2. per person.
    for (user, n) in &per_user {
        if *n > u64::from(spec.quota.per_user) {
            out.push(format!("{user} holds {n} coupons, over the per-person limit {}", spec.quota.per_user));
        }
    }
    // 5. every success answered is a durable row.
    for id in &told.coupons {
        if !stored.contains(id) {
            out.push(format!("coupon {id} was answered but has no row"));
        }
    }
    Ok(out)
}

/// The rows of campaign `name` instance `uid` (empty for a campaign from a file), as the
/// events they were written from.
pub async fn rows(
    db: &Database,
    name: &str,
    uid: &str,
) -> anyhow::Result<Vec<platform::events::contracts::CouponIssued>> {
    Ok(store::issued_in_campaign(&db.pool, &store::Instance { name, uid }).await?)
}

/// Rows of campaign `name` instance `uid` in the database.
pub async fn stored_count(db: &Database, name: &str, uid: &str) -> anyhow::Result<i64> {
    Ok(store::issued_total(&db.pool, &store::Instance { name, uid }).await?)
}
