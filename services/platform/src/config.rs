//! Configuration shared by every role, read by clap from flags or environment variables
//! (Kubernetes Secrets arrive as env vars). Errors name the variable that was wrong.

use std::time::Duration;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::http::HttpSettings;

/// HTTP limits every service applies.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "WW_MAX_BODY_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub max_body_bytes: u64,
    /// Time a request may take before it is answered 503, in milliseconds.
    #[arg(long, env = "WW_REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub request_timeout_ms: u64,
    /// Requests handled at once; beyond it requests are shed with 429 at once.
    #[arg(long, env = "WW_MAX_IN_FLIGHT", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_in_flight: u64,
    /// On SIGTERM, how long in-flight requests may run before connections are closed.
    #[arg(long, env = "WW_SHUTDOWN_GRACE_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_seconds: u64,
    /// Believe the first `X-Forwarded-For` hop as the client address (only behind an
    /// ingress that sets it).
    #[arg(long, env = "WW_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
}

impl HttpConfig {
    pub fn settings(&self) -> HttpSettings {
        HttpSettings {
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_in_flight: usize::try_from(self.max_in_flight).unwrap_or(usize::MAX),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
        }
    }
}

/// Access-token keys. Several keys may verify; one signs. Rotation: add the new key,
/// roll out, switch `WW_JWT_ACTIVE_KID`, and drop the old key after the token lifetime.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Tokens")]
pub struct JwtConfig {
    /// Comma-separated `kid=secret` pairs (secrets at least 32 bytes) that verify tokens.
    #[arg(long, env = "WW_JWT_KEYS", value_parser = parse_keys, hide_env_values = true)]
    pub jwt_keys: Option<KeyRing>,
    /// The key id that signs new tokens (default: the first key).
    #[arg(long, env = "WW_JWT_ACTIVE_KID")]
    pub jwt_active_kid: Option<String>,
    /// The `iss` claim tokens carry and verification requires.
    #[arg(long, env = "WW_JWT_ISSUER", default_value = "weatherwise")]
    pub jwt_issuer: String,
}

/// Parsed `kid=secret` pairs, in the order given.
#[derive(Clone)]
pub struct KeyRing(pub Vec<(String, Vec<u8>)>);

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "KeyRing({kids:?})")
    }
}

fn parse_keys(raw: &str) -> Result<KeyRing, String> {
    let mut keys = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kid, secret) =
            pair.split_once('=').ok_or_else(|| format!("`{}` is not of the form kid=secret", redact(pair)))?;
        let kid = kid.trim();
        if kid.is_empty()
            || kid.len() > 64
            || !kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(format!("key id `{kid}` must be 1-64 characters of letters, digits, '-', '_' or '.'"));
        }
        if secret.len() < 32 {
            return Err(format!("the secret of key `{kid}` is {} bytes; at least 32 are required", secret.len()));
        }
        keys.push((kid.to_owned(), secret.as_bytes().to_vec()));
    }
    if keys.is_empty() {
        return Err("no keys given".to_owned());
    }
    Ok(KeyRing(keys))
}

fn redact(pair: &str) -> String {
    pair.chars().take(8).collect::<String>() + "…"
}

/// Parses `T` from the process arguments and environment, exiting with a message that
/// names the environment variable behind a missing or malformed setting.
pub fn parse_or_exit<T: Parser>() -> T {
    let command = T::command();
    let result = command.clone().try_get_matches().and_then(|mut m| T::from_arg_matches_mut(&mut m));
    match result {
        Ok(value) => value,
        Err(err) => {
            let hint = env_hint(&command, &err);
            let _ = err.print();
            if let Some(hint) = hint {
                eprintln!("{hint}");
            }
            std::process::exit(err.exit_code());
        }
    }
}

/// "hint: ..." naming the environment variables of the arguments an error is about.
pub fn env_hint(command: &clap::Command, err: &clap::Error) -> Option<String> {
    if !matches!(err.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::MissingRequiredArgument)
    {
        return None;
    }
    let mut names = Vec::new();
    for (kind, value) in err.context() {
        if kind != ContextKind::InvalidArg {
            continue;
        }
        let flags: Vec<&str> = match value {
            ContextValue::String(s) => vec![s.as_str()],
            ContextValue::Strings(v) => v.iter().map(String::as_str).collect(),
            _ => continue,
        };
        for flag in flags {
            if let Some(env) = env_of(command, flag) {
                names.push(format!("{flag} (environment variable {env})"));
            }
        }
    }
    (!names.is_empty()).then(|| format!("hint: set {}", names.join(", ")))
}

fn env_of(command: &clap::Command, flag: &str) -> Option<String> {
    let long = flag.split_whitespace().next()?.trim_start_matches("--");
    for arg in command.get_arguments() {
        if arg.get_long() == Some(long) {
            return arg.get_env().map(|e| e.to_string_lossy().into_owned());
        }
    }
    command.get_subcommands().find_map(|sub| env_of(sub, flag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(Debug, Parser)]
    struct Probe {
        #[arg(long, env = "WW_TEST_PROBE_URL")]
        database_url: String,
        #[command(flatten)]
        http: HttpConfig,
    }

    #[test]
    fn a_missing_setting_is_named_by_its_environment_variable() {
        let err = Probe::try_parse_from(["probe"]).unwrap_err();
        let hint = env_hint(&Probe::command(), &err).expect("hint");
        assert!(hint.contains("WW_TEST_PROBE_URL"), "{hint}");
    }

    #[test]
    fn a_malformed_setting_is_named_by_its_environment_variable() {
        let err = Probe::try_parse_from(["probe", "--database-url", "x", "--max-in-flight", "lots"]).unwrap_err();
        let hint = env_hint(&Probe::command(), &err).expect("hint");
        assert!(hint.contains("WW_MAX_IN_FLIGHT"), "{hint}");
    }

    #[test]
    fn key_rings_refuse_short_secrets_and_bad_pairs() {
        assert!(parse_keys("k1=short").unwrap_err().contains("at least 32"));
        assert!(parse_keys("nokid").is_err());
        let ring = parse_keys("a=0123456789abcdef0123456789abcdef, b=0123456789abcdef0123456789abcdeX").unwrap();
        assert_eq!(ring.0.len(), 2);
        assert!(!format!("{ring:?}").contains("0123"));
    }
}
