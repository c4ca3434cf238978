//! Password hashing (Argon2id, run off the async workers and bounded in concurrency, so
//! a login storm cannot starve other requests) and the password policy. Checks of
//! existing passwords (logins) and hashes of new ones (signups, password changes) wait
//! for separate permits, so a signup flood cannot starve logins. A permit is held by the
//! blocking task itself: a cancelled request does not free it while the hash still runs.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use platform::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::AuthConfig;

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    /// For checking existing passwords (logins, the current password on a change).
    verify_permits: Arc<Semaphore>,
    /// For hashing new passwords (signups, the new password on a change).
    hash_permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so timing does not reveal it.
    dummy_hash: Arc<String>,
}

impl Hasher {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let params = Params::new(config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let permits = match config.password_hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            n => n as usize,
        };
        let dummy_hash = hash_blocking(&params, "not-a-real-password-just-for-timing")?;
        Ok(Self {
            params,
            verify_permits: Arc::new(Semaphore::new(permits)),
            hash_permits: Arc::new(Semaphore::new(permits.div_ceil(2))),
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let permit = self.hash_permits.clone().acquire_owned().await.map_err(ApiError::internal)?;
        let params = self.params.clone();
        run_holding(permit, move || hash_blocking(&params, &password)).await?.map_err(ApiError::internal)
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is none.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let permit = self.verify_permits.clone().acquire_owned().await.map_err(ApiError::internal)?;
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let ok = run_holding(permit, move || {
            PasswordHash::new(&stored)
                .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await?;
        Ok(exists && ok)
    }
}

/// Runs `work` on the blocking pool with `permit` moved into it, so the permit is released
/// when the work really ends — not when the awaiting request is cancelled (a timeout, a
/// client that went away) while the hash keeps a CPU busy.
async fn run_holding<T: Send + 'static>(
    permit: OwnedSemaphorePermit,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(ApiError::internal)
}

fn hash_blocking(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 128;

const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "iloveyou12",
    "1q2w3e4r5t",
    "qwerty1234",
    "abcdefghij",
    "0123456789",
    "weatherwise",
    "letmein123",
    "welcome123",
    "sunshine12",
];

/// The password policy (NIST SP 800-63B in spirit): length, not trivially guessable,
/// not the email. Returns a message that tells the person what to change.
pub fn check_policy(password: &str, email: &str) -> Result<(), ApiError> {
    let weak = |msg: &str| ApiError::unprocessable("weak-password", msg.to_owned()).with("field", "password");
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(weak(&format!("The password must be at least {MIN_LEN} characters long.")));
    }
    if chars > MAX_LEN {
        return Err(weak(&format!("The password must be at most {MAX_LEN} characters long.")));
    }
    let lower = password.to_lowercase();
    let distinct: std::collections::HashSet<char> = lower.chars().collect();
    if distinct.len() < 4 {
        return Err(weak("The password must use at least 4 different characters."));
    }
    if COMMON.contains(&lower.as_str()) {
        return Err(weak("This password is among the most common ones; choose another."));
    }
    let local = email.split('@').next().unwrap_or_default();
    if lower == email || (local.len() >= 4 && lower.contains(local)) {
        return Err(weak("The password must not contain your email address."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_check_keeps_its_permit_until_the_hash_really_ends() {
        // A deliberately slow hash, one permit.
        let config = AuthConfig {
            argon2_memory_kib: 32 * 1024,
            argon2_iterations: 4,
            password_hash_concurrency: 1,
            ..AuthConfig::default()
        };
        let hasher = Hasher::new(&config).unwrap();
        let started = std::time::Instant::now();
        let check = hasher.verify("a-password-to-check".to_owned(), None);
        assert!(tokio::time::timeout(std::time::Duration::from_millis(5), check).await.is_err(), "cancelled");
        assert_eq!(hasher.verify_permits.available_permits(), 0, "the abandoned hash still runs and holds its permit");
        while hasher.verify_permits.available_permits() == 0 {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "the permit never came back");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn new_password_hashes_do_not_take_the_permits_of_logins() {
        let config = AuthConfig {
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            password_hash_concurrency: 2,
            ..AuthConfig::default()
        };
        let hasher = Hasher::new(&config).unwrap();
        let _all_hash_permits = hasher.hash_permits.clone().acquire_many_owned(1).await.unwrap();
        assert_eq!(hasher.hash_permits.available_permits(), 0);
        let checked = tokio::time::timeout(std::time::Duration::from_secs(10), hasher.verify("x".repeat(12), None));
        assert!(!checked.await.expect("a login is not queued behind signups").unwrap());
    }

    #[test]
    fn the_policy_explains_what_is_wrong() {
        assert!(check_policy("short", "a@b.co").is_err());
        assert!(check_policy("aaaaaaaaaaaa", "a@b.co").is_err());
        assert!(check_policy("Password123", "a@b.co").is_err());
        assert!(check_policy("minji.kim-secret", "minji.kim@example.com").is_err());
        assert!(check_policy("correct horse battery", "a@b.co").is_ok());
    }
}
