//! Validation of what people type that more than one service accepts.

use crate::ApiError;

pub const NICKNAME_MAX: usize = 32;

/// Trims a nickname and checks it is 1–32 printable characters.
pub fn nickname(raw: &str) -> Result<String, ApiError> {
    let nick = raw.trim();
    let count = nick.chars().count();
    if count == 0 || count > NICKNAME_MAX || nick.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid-nickname",
            format!("The nickname must be 1 to {NICKNAME_MAX} printable characters."),
        )
        .with("field", "nickname"));
    }
    Ok(nick.to_owned())
}
