//! Validation of what people type that more than one service accepts.

use crate::ApiError;

pub const NICKNAME_MAX: usize = 32;

/// What [`nickname`] accepts, as the OpenAPI document states it (with `maxLength` 32): no
/// control character, at least one that is not white space. The schema attributes of the
/// signup and profile bodies spell the same literal; a test compares them.
pub const NICKNAME_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";

/// Checks a nickname is at most 32 characters, none of them a control character, not all
/// white space — and trims it.
pub fn nickname(raw: &str) -> Result<String, ApiError> {
    let nick = raw.trim();
    let count = raw.chars().count();
    if nick.is_empty() || count > NICKNAME_MAX || raw.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid-nickname",
            format!("The nickname must be 1 to {NICKNAME_MAX} printable characters."),
        )
        .with("field", "nickname"));
    }
    Ok(nick.to_owned())
}
