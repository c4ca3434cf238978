//! Page cursors of lists ordered newest first by (a time in milliseconds, an id): `<ms>.<uuid>`,
//! with the page size, as every list endpoint takes them (`?before=&limit=`).

use uuid::Uuid;

use crate::ApiError;

/// The position after the last row of a page.
pub fn cursor(at_ms: i64, id: Uuid) -> String {
    format!("{at_ms}.{id}")
}

/// `before` (a `next` cursor, or none) and `limit` (1 to `max`, default `default`), checked:
/// 400 `invalid-cursor` / `invalid-query` otherwise.
pub fn page(
    before: Option<&str>,
    limit: Option<i64>,
    default: i64,
    max: i64,
) -> Result<(Option<(i64, String)>, i64), ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request("invalid-query", format!("limit must be 1 to {max}.")));
    }
    let before = match before {
        None => None,
        Some(raw) => Some(
            raw.split_once('.')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, Uuid::parse_str(id).ok()?.to_string())))
                .ok_or_else(|| ApiError::bad_request("invalid-cursor", "before must be a `next` cursor."))?,
        ),
    };
    Ok((before, limit))
}

/// The `next` cursor of a page of `len` rows whose last is at `last`: none when the page was
/// not full (it was the last one).
pub fn next(len: usize, limit: i64, last: Option<(i64, Uuid)>) -> Option<String> {
    (i64::try_from(len).unwrap_or(i64::MAX) == limit).then_some(last).flatten().map(|(at, id)| cursor(at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_400s() {
        let id = Uuid::now_v7();
        let c = cursor(1_764_115_200_000, id);
        assert_eq!(page(Some(&c), None, 20, 100).unwrap(), (Some((1_764_115_200_000, id.to_string())), 20));
        for bad in ["", "12", "x.y", "12.not-a-uuid", "1.5.6"] {
            assert_eq!(page(Some(bad), None, 20, 100).unwrap_err().code(), "invalid-cursor", "{bad}");
        }
        assert_eq!(page(None, Some(0), 20, 100).unwrap_err().code(), "invalid-query");
        assert_eq!(next(2, 2, Some((5, id))), Some(format!("5.{id}")));
        assert_eq!(next(1, 2, Some((5, id))), None);
    }
}
