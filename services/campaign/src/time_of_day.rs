//! `opensAt` and `closesAt` as people write them: `"HH:MM"`, or `"HH:MM:SS"` when seconds matter.
//! Written back as `"HH:MM"` whenever the seconds are zero, so a resource round-trips as it was typed.

use chrono::{NaiveTime, Timelike};
use serde::{Deserialize, Deserializer, Serializer};

const EXPECTED: &str = "a time of day written \"HH:MM\" or \"HH:MM:SS\"";

/// Two digits for each part, as the schema's pattern says; chrono alone would also take `9:00`.
fn well_formed(text: &str) -> bool {
    let b = text.as_bytes();
    matches!(b.len(), 5 | 8)
        && b.iter().enumerate().all(|(i, c)| if i == 2 || i == 5 { *c == b':' } else { c.is_ascii_digit() })
}

fn parse(text: &str) -> Option<NaiveTime> {
    if !well_formed(text) {
        return None;
    }
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .ok()
        // chrono reads second 60 as a leap second; no campaign opens during one.
        .filter(|t| t.nanosecond() < 1_000_000_000)
}

fn format(time: &NaiveTime) -> String {
    match (time.second(), time.nanosecond()) {
        (0, 0) => time.format("%H:%M").to_string(),
        (_, 0) => time.format("%H:%M:%S").to_string(),
        _ => time.format("%H:%M:%S%.f").to_string(),
    }
}

fn read<E: serde::de::Error>(text: &str) -> Result<NaiveTime, E> {
    parse(text).ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(text), &EXPECTED))
}

pub(crate) fn serialize<S: Serializer>(time: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(time))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    read(&String::deserialize(d)?)
}

/// The same for an optional time; absence is handled by `#[serde(default)]` on the field.
pub(crate) mod optional {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(time: &Option<NaiveTime>, s: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => s.serialize_some(&format(time)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveTime>, D::Error> {
        Option::<String>::deserialize(d)?.map(|text| read(&text)).transpose()
    }
}
