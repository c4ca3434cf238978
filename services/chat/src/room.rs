//! Room names: what a URL path segment, a Kafka key and a Redis key can all carry unescaped.

/// The longest room name.
pub const ROOM_NAME_MAX: usize = 64;

/// Whether `name` is a room name: 1 to 64 of lowercase letters, digits, `-` and `_`, starting
/// with a letter or digit.
pub fn is_room_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= ROOM_NAME_MAX
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}

/// Why a name is refused, for the error a person reads.
pub const ROOM_NAME_RULE: &str =
    "a room name is 1 to 64 lowercase letters, digits, '-' or '_', starting with a letter or digit";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_plain_lowercase_words() {
        for good in ["general", "snow-festival-2026", "a", "x_1", &"r".repeat(64)] {
            assert!(is_room_name(good), "{good}");
        }
        for bad in ["", "General", "-lead", "_lead", "with space", "slash/room", "ünï", &"r".repeat(65), "a.b"] {
            assert!(!is_room_name(bad), "{bad}");
        }
    }
}
