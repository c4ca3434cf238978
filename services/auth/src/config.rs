//! Settings of the auth service.

use std::time::Duration;

/// Token lifetimes, login limits and password-hash cost.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Auth")]
pub struct AuthConfig {
    /// Lifetime of access tokens, in seconds (at most 15 minutes: it is also how long a
    /// replica must remember a revoked session).
    #[arg(long, env = "WW_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(30..=900))]
    pub access_token_ttl_seconds: u64,
    /// Lifetime of refresh tokens, in days.
    #[arg(long, env = "WW_REFRESH_TOKEN_TTL_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=365))]
    pub refresh_token_ttl_days: u64,
    /// Absolute lifetime of a login session, in days: refreshing never extends a session
    /// past this age; then the person logs in again.
    #[arg(long, env = "WW_SESSION_MAX_AGE_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=365))]
    pub session_max_age_days: u64,
    /// Failed logins one account may have per window before it is locked for the rest of it.
    #[arg(long, env = "WW_LOGIN_MAX_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub login_max_failures: u64,
    /// The per-account failure window, in seconds.
    #[arg(long, env = "WW_LOGIN_FAILURE_WINDOW_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub login_failure_window_seconds: u64,
    /// Login and signup attempts one client address may make per window (one budget).
    #[arg(long, env = "WW_LOGIN_MAX_PER_ADDRESS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub login_max_per_address: u64,
    /// The per-address window, in seconds.
    #[arg(long, env = "WW_LOGIN_ADDRESS_WINDOW_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub login_address_window_seconds: u64,
    /// Argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, env = "WW_ARGON2_MEMORY_KIB", default_value_t = 19_456, value_parser = clap::value_parser!(u32).range(1024..=1_048_576))]
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (OWASP: 2).
    #[arg(long, env = "WW_ARGON2_ITERATIONS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    #[arg(long, env = "WW_ARGON2_PARALLELISM", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub argon2_parallelism: u32,
    /// Password checks (logins) computed at once (0: one per CPU); more wait, bounded by
    /// the request timeout. New-password hashes (signups, password changes) have their own,
    /// half as many permits, so a signup flood cannot starve logins.
    #[arg(long, env = "WW_PASSWORD_HASH_CONCURRENCY", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub password_hash_concurrency: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_seconds: 900,
            refresh_token_ttl_days: 30,
            session_max_age_days: 30,
            login_max_failures: 5,
            login_failure_window_seconds: 900,
            login_max_per_address: 60,
            login_address_window_seconds: 60,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            password_hash_concurrency: 0,
        }
    }
}

impl AuthConfig {
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_seconds)
    }

    pub fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_days * 86_400)
    }

    pub fn session_max_age(&self) -> Duration {
        Duration::from_secs(self.session_max_age_days * 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        auth: AuthConfig,
    }

    #[test]
    fn access_tokens_live_at_most_fifteen_minutes() {
        assert!(Probe::try_parse_from(["probe", "--access-token-ttl-seconds", "900"]).is_ok());
        let err = Probe::try_parse_from(["probe", "--access-token-ttl-seconds", "3600"]).unwrap_err();
        assert!(err.to_string().contains("30..=900"), "{err}");
    }
}
