//! What this replica knows people hold: every coupon of the campaign in the log (replayed
//! from its beginning at start, then followed) and every coupon this replica published.
//! It answers a person who already has their coupon(s) with 409 at any time — after the
//! day sold out, after closing, after the campaign ended — without touching Redis, so a
//! client whose answer was lost gets their coupon back on retry.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use uuid::Uuid;

use super::engine::Record;

#[derive(Default)]
pub(super) struct Index {
    holders: RwLock<HashMap<Uuid, BTreeMap<u32, Record>>>,
}

/// What the index says of one request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Known {
    /// The coupon this request is answered with (the idempotency key's, or the latest at
    /// the per-person limit).
    Holds(u32, Record),
    /// Under the limit (or nothing known): the request goes on.
    Room,
}

impl Index {
    pub(super) fn lookup(&self, user: Uuid, key: Option<&str>, per_user: u32) -> Known {
        let holders = self.holders.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(coupons) = holders.get(&user) else { return Known::Room };
        if let Some(key) = key
            && let Some((seq, r)) = coupons.iter().find(|(_, r)| r.idempotency_key.as_deref() == Some(key))
        {
            return Known::Holds(*seq, r.clone());
        }
        match coupons.iter().next_back() {
            Some((seq, r)) if coupons.len() >= per_user as usize => Known::Holds(*seq, r.clone()),
            _ => Known::Room,
        }
    }

    /// Records a durable coupon; returns false when it was known already (same id).
    /// A different coupon under the same seq does not replace the known one here: the
    /// conflict is settled by the database row ([`Index::replace`]).
    pub(super) fn insert(&self, user: Uuid, seq: u32, record: Record) -> bool {
        let mut holders = self.holders.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let coupons = holders.entry(user).or_default();
        if coupons.contains_key(&seq) {
            return false;
        }
        coupons.insert(seq, record.issued());
        true
    }

    pub(super) fn contains(&self, user: Uuid, seq: u32, coupon_id: Uuid) -> bool {
        let holders = self.holders.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        holders.get(&user).and_then(|c| c.get(&seq)).is_some_and(|r| r.coupon_id == coupon_id)
    }

    pub(super) fn replace(&self, user: Uuid, seq: u32, record: Record) {
        let mut holders = self.holders.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        holders.entry(user).or_default().insert(seq, record.issued());
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.holders.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, Utc};

    use super::*;

    fn record(key: Option<&str>) -> Record {
        Record {
            coupon_id: Uuid::now_v7(),
            code: "C".into(),
            day: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            issued_at: Utc::now(),
            expires_at: Utc::now(),
            pending: false,
            idempotency_key: key.map(str::to_owned),
        }
    }

    #[test]
    fn a_person_at_the_limit_is_answered_with_their_latest_coupon() {
        let index = Index::default();
        let user = Uuid::new_v4();
        assert_eq!(index.lookup(user, None, 2), Known::Room);
        let first = record(Some("a"));
        assert!(index.insert(user, 1, first.clone()));
        assert_eq!(index.lookup(user, None, 2), Known::Room);
        assert_eq!(index.lookup(user, Some("a"), 2), Known::Holds(1, first.clone()));
        let second = record(None);
        index.insert(user, 2, second.clone());
        assert_eq!(index.lookup(user, Some("other"), 2), Known::Holds(2, second));
        assert_eq!(index.lookup(user, None, 1), index.lookup(user, None, 2));
    }

    #[test]
    fn the_first_coupon_known_under_a_seq_stays_until_the_database_settles_it() {
        let index = Index::default();
        let user = Uuid::new_v4();
        let (a, b) = (record(None), record(None));
        assert!(index.insert(user, 1, a.clone()));
        assert!(!index.insert(user, 1, b.clone()));
        assert!(index.contains(user, 1, a.coupon_id));
        index.replace(user, 1, b.clone());
        assert!(index.contains(user, 1, b.coupon_id));
        assert_eq!(index.len(), 1);
    }
}
