//! Coupons as clients see them, and how their codes are made.

use chrono::{DateTime, NaiveDate, Utc};
use platform::events::contracts::CouponIssued;
use rand::Rng;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CouponStatus {
    Active,
    Redeemed,
    Expired,
}

/// A coupon in answers: issuance (201, or inside a 409), the wallet, redemption.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Coupon {
    pub coupon_id: Uuid,
    /// The code the shop scans; unguessable (100 random bits).
    #[schema(example = "7KQ2M-XW9DT-P4HZC-R8N3F")]
    pub code: String,
    pub campaign: String,
    pub title: String,
    pub benefit: String,
    /// 1 for the first coupon of this campaign, 2 for the second, …
    pub seq: u32,
    /// The campaign-local date the coupon counted against.
    pub day: NaiveDate,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub redeemed_at: Option<DateTime<Utc>>,
    pub status: CouponStatus,
}

impl Coupon {
    pub fn from_event(e: &CouponIssued, now: DateTime<Utc>) -> Self {
        Self {
            coupon_id: e.coupon_id,
            code: e.code.clone(),
            campaign: e.campaign.clone(),
            title: e.title.clone(),
            benefit: e.benefit.clone(),
            seq: e.seq,
            day: e.day,
            issued_at: e.issued_at,
            expires_at: e.expires_at,
            redeemed_at: None,
            status: if e.expires_at <= now { CouponStatus::Expired } else { CouponStatus::Active },
        }
    }
}

// Crockford's base32 alphabet: no I, L, O or U, so codes survive being read aloud.
const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 20 symbols of 5 random bits each, in four groups: `7KQ2M-XW9DT-P4HZC-R8N3F`.
pub fn new_code() -> String {
    // The thread-local generator is a CSPRNG seeded from the OS: unguessable, and no
    // system call per symbol on the issue path.
    let mut rng = rand::thread_rng();
    let mut code = String::with_capacity(23);
    for i in 0..20 {
        if i > 0 && i % 5 == 0 {
            code.push('-');
        }
        code.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_and_distinct() {
        let a = new_code();
        assert_eq!(a.len(), 23);
        assert_eq!(a.matches('-').count(), 3);
        assert!(a.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
        let many: std::collections::HashSet<String> = (0..10_000).map(|_| new_code()).collect();
        assert_eq!(many.len(), 10_000);
    }
}
