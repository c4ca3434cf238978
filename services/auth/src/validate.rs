//! Normalising and validating what people type: emails and nicknames.

use platform::ApiError;

pub const EMAIL_MAX: usize = 254;

/// Trims and lower-cases an email and checks its shape, so one mailbox is one account.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let invalid = || ApiError::unprocessable("invalid-email", "The email address is not valid.").with("field", "email");
    if email.is_empty() || email.len() > EMAIL_MAX || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63 && !label.starts_with('-') && !label.ends_with('-'))
        && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
        return Err(invalid());
    }
    Ok(email)
}

pub use platform::validate::nickname;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_to_one_spelling() {
        assert_eq!(normalize_email("  Minji.Kim@Example.COM ").unwrap(), "minji.kim@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in
            ["", "no-at", "@example.com", "a@", "a@nodot", "a@.example.com", "a b@example.com", "a@exa..mple.com"]
        {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nicknames_are_trimmed_and_bounded() {
        assert_eq!(nickname("  비 오는 날 ").unwrap(), "비 오는 날");
        assert!(nickname("   ").is_err());
        assert!(nickname(&"x".repeat(33)).is_err());
        assert!(nickname("tab\there").is_err());
    }
}
