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

/// White space as JSON Schema patterns count it (ECMAScript `\s`: Unicode white space and the
/// byte-order mark, which Rust's `trim` keeps).
fn blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{FEFF}'
}

/// A line of text (a title): at most `max` characters, none of them a control character, not
/// all white space. Trimmed; `None` when it breaks a rule.
pub fn line(raw: &str, max: usize) -> Option<String> {
    let trimmed = raw.trim_matches(blank);
    let ok = !trimmed.is_empty() && raw.chars().count() <= max && !raw.chars().any(char::is_control);
    ok.then(|| trimmed.to_owned())
}

/// Text of several lines (a post, a comment): as [`line`], with tabs and line breaks allowed.
pub fn text(raw: &str, max: usize) -> Option<String> {
    optional_text(raw, max).filter(|t| !t.is_empty())
}

/// As [`text`], and empty (or only white space) is fine: trimmed to "".
pub fn optional_text(raw: &str, max: usize) -> Option<String> {
    let bad = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    let ok = raw.chars().count() <= max && !raw.chars().any(bad);
    ok.then(|| raw.trim_matches(blank).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_texts_are_checked_on_what_was_sent_and_trimmed() {
        assert_eq!(line("  비 오는 날  ", 20).as_deref(), Some("비 오는 날"));
        assert_eq!(line("   ", 20), None);
        assert_eq!(line("a\nb", 20), None);
        assert_eq!(line(&"가".repeat(21), 20), None);
        assert_eq!(text("first\r\n\tsecond\n", 20).as_deref(), Some("first\r\n\tsecond"));
        assert_eq!(text("bell\u{7}", 20), None);
        assert_eq!(text("c1\u{85}", 20), None);
        assert_eq!(line("\u{FEFF}", 20), None, "a byte-order mark is white space to JSON Schema");
        assert_eq!(optional_text("   ", 20).as_deref(), Some(""));
        assert_eq!(optional_text(&" ".repeat(21), 20), None, "the limit counts what was sent");
        assert_eq!(optional_text("\u{B}", 20), None);
    }
}
