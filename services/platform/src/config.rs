//! Configuration shared by every role, read by clap from flags or environment variables
//! (Kubernetes Secrets arrive as env vars). Errors name the variable that was wrong.

use std::time::Duration;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::http::{ForwardedPolicy, HttpSettings};

/// HTTP limits every service applies.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "WW_MAX_BODY_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub max_body_bytes: u64,
    /// Largest `multipart/form-data` body (uploads) accepted, in bytes; each upload route
    /// applies its own smaller limit within it.
    #[arg(long, env = "WW_MAX_UPLOAD_BYTES", default_value_t = 12 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=256 * 1024 * 1024))]
    pub max_upload_bytes: u64,
    /// Time a request may take before it is answered 503, in milliseconds.
    #[arg(long, env = "WW_REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub request_timeout_ms: u64,
    /// Requests handled at once; beyond it requests are shed with 429 at once.
    #[arg(long, env = "WW_MAX_IN_FLIGHT", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_in_flight: u64,
    /// On SIGTERM, how long in-flight requests may run before connections are closed.
    #[arg(long, env = "WW_SHUTDOWN_GRACE_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_seconds: u64,
    /// Time a connection has to send a request's headers, in milliseconds, counted from
    /// when the server starts waiting for them; slower connections are closed (slowloris).
    /// It also closes idle keep-alive connections, so keep it above the idle timeout of
    /// pooled upstream connections in front (ingress-nginx: 60 s), or that proxy may reuse
    /// a connection just as it closes.
    #[arg(long, env = "WW_HEADER_READ_TIMEOUT_MS", default_value_t = 65_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_read_timeout_ms: u64,
    /// Open connections at once; further ones wait in the listen backlog.
    #[arg(long, env = "WW_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Proxies whose `X-Forwarded-For` is believed: `none` (clients connect directly) or
    /// comma-separated CIDR ranges of the ingress, e.g. `10.0.0.0/8,fd00::/8`. The client
    /// is the rightmost address that is not a trusted proxy. Required for the auth role.
    #[arg(long, env = "WW_TRUSTED_PROXIES", value_parser = ForwardedPolicy::parse)]
    pub trusted_proxies: Option<ForwardedPolicy>,
}

impl HttpConfig {
    pub fn settings(&self) -> HttpSettings {
        HttpSettings {
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
            max_upload_bytes: usize::try_from(self.max_upload_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_in_flight: usize::try_from(self.max_in_flight).unwrap_or(usize::MAX),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
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
        // Two secrets under one id would make verification depend on which one wins.
        if keys.iter().any(|(k, _): &(String, Vec<u8>)| k == kid) {
            return Err(format!("key id `{kid}` appears twice; each key needs its own id"));
        }
        keys.push((kid.to_owned(), secret.as_bytes().to_vec()));
    }
    if keys.is_empty() {
        return Err("no keys given".to_owned());
    }
    Ok(KeyRing(keys))
}

/// `url` with the password (if any) replaced by `***`, for errors and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `text` with the password of every URL in it replaced by `***` (errors of database and
/// Redis clients may quote the URL they were given).
pub fn redact_secrets(text: &str) -> String {
    text.split(' ')
        .map(|word| if word.contains("://") { redact_url(word) } else { word.to_owned() })
        .collect::<Vec<_>>()
        .join(" ")
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
        Err(mut err) => {
            let hint = env_hint(&command, &err);
            hide_secret_value(&command, &mut err);
            let _ = err.print();
            if let Some(hint) = hint {
                eprintln!("{hint}");
            }
            std::process::exit(err.exit_code());
        }
    }
}

/// clap quotes a malformed value in its error; for settings whose values are secrets
/// (those with `hide_env_values`: keys, URLs with passwords) it shows `***` instead.
pub fn hide_secret_value(command: &clap::Command, err: &mut clap::Error) {
    let flags: Vec<String> = err
        .context()
        .filter(|(kind, _)| *kind == ContextKind::InvalidArg)
        .filter_map(|(_, value)| match value {
            ContextValue::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let secret = flags.iter().any(|flag| arg_of(command, flag).is_some_and(|a| a.is_hide_env_values_set()));
    if secret && err.get(ContextKind::InvalidValue).is_some() {
        err.insert(ContextKind::InvalidValue, ContextValue::String("***".to_owned()));
    }
}

fn arg_of(command: &clap::Command, flag: &str) -> Option<clap::Arg> {
    let long = flag.split_whitespace().next()?.trim_start_matches("--");
    if let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(long)) {
        return Some(arg.clone());
    }
    command.get_subcommands().find_map(|sub| arg_of(sub, flag))
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

    #[test]
    fn a_malformed_secret_is_not_quoted_in_the_error() {
        #[derive(Debug, Parser)]
        struct Secrets {
            #[command(flatten)]
            jwt: JwtConfig,
        }
        let raw = "k1=0123456789abcdef0123456789abcdef,k1=fedcba9876543210fedcba9876543210";
        let mut err = Secrets::try_parse_from(["probe", "--jwt-keys", raw]).unwrap_err();
        assert!(err.to_string().contains("0123456789abcdef"), "clap quotes the value by itself");
        hide_secret_value(&Secrets::command(), &mut err);
        let shown = err.to_string();
        assert!(!shown.contains("0123456789abcdef") && shown.contains("***"), "{shown}");
        assert!(shown.contains("appears twice"), "the reason stays: {shown}");
    }

    #[test]
    fn a_key_id_given_twice_is_refused() {
        let err = parse_keys("a=0123456789abcdef0123456789abcdef,a=0123456789abcdef0123456789abcdeX").unwrap_err();
        assert!(err.contains("`a` appears twice"), "{err}");
    }

    #[test]
    fn urls_with_credentials_are_redacted() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/ww"), "postgres://app:***@db:5432/ww");
        assert_eq!(redact_url("redis://:hunter2@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(redact_url("redis://cache:6379/"), "redis://cache:6379/");
        let msg = redact_secrets("cannot connect to postgres://u:pw@h/db and redis://:x@r:6379 (refused)");
        assert_eq!(msg, "cannot connect to postgres://u:***@h/db and redis://:***@r:6379 (refused)");
    }
}
