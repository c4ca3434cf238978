//! A person's coupon as the issuer state keeps it, and its one-line encoding (the same in
//! Redis and in memory): `P|I`, coupon id, code, issued and expiry milliseconds, the
//! campaign day, and the idempotency key last (it may itself contain `|`).

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub coupon_id: Uuid,
    pub code: String,
    pub day: NaiveDate,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Taken, but the issuance event is not known to be durable yet.
    pub pending: bool,
    /// The `Idempotency-Key` the coupon was asked for with, if any.
    pub idempotency_key: Option<String>,
}

impl Record {
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            if self.pending { "P" } else { "I" },
            self.coupon_id,
            self.code,
            self.issued_at.timestamp_millis(),
            self.expires_at.timestamp_millis(),
            self.day,
            self.idempotency_key.as_deref().unwrap_or("")
        )
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(7, '|');
        let pending = match parts.next()? {
            "P" => true,
            "I" => false,
            _ => return None,
        };
        let coupon_id = Uuid::parse_str(parts.next()?).ok()?;
        let code = parts.next()?.to_owned();
        let issued_at = DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)?;
        let expires_at = DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)?;
        let day = parts.next()?.parse().ok()?;
        let idempotency_key = parts.next().filter(|k| !k.is_empty()).map(str::to_owned);
        Some(Self { coupon_id, code, day, issued_at, expires_at, pending, idempotency_key })
    }

    /// The same coupon, known durable.
    pub fn issued(mut self) -> Self {
        self.pending = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&str>) -> Record {
        Record {
            coupon_id: Uuid::now_v7(),
            code: "7KQ2M-XW9DT-P4HZC-R8N3F".into(),
            day: NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(),
            issued_at: DateTime::from_timestamp_millis(1_774_750_000_123).unwrap(),
            expires_at: DateTime::from_timestamp_millis(1_775_354_800_123).unwrap(),
            pending: true,
            idempotency_key: key.map(str::to_owned),
        }
    }

    #[test]
    fn a_record_survives_its_encoding_with_and_without_a_key() {
        for key in [None, Some("retry-1"), Some("a|b|c"), Some("|")] {
            let r = record(key);
            assert_eq!(Record::decode(&r.encode()), Some(r.clone()), "{key:?}");
            assert_eq!(Record::decode(&r.clone().issued().encode()), Some(r.issued()));
        }
    }

    #[test]
    fn the_scripts_find_the_pending_mark_and_the_coupon_id_at_fixed_places() {
        // prelude.lua reads the mark at byte 1 and the id at bytes 3..=38.
        let r = record(Some("k"));
        let encoded = r.encode();
        assert_eq!(&encoded[..1], "P");
        assert_eq!(&encoded[2..38], r.coupon_id.to_string());
    }

    #[test]
    fn garbage_is_not_a_record() {
        for raw in ["", "P", "X|00000000-0000-0000-0000-000000000000|c|1|2|2026-01-01|", "P|nope|c|1|2|2026-01-01|"] {
            assert_eq!(Record::decode(raw), None, "{raw}");
        }
    }
}
