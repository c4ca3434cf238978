//! The `ww` binary's refusals at start: settings that must be stated, and secrets that
//! must not be printed.

use std::process::{Command, Output};

const KEYS: &str = "k1=0123456789abcdef0123456789abcdef";

fn ww(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ww"));
    cmd.args(args);
    for var in ["WW_TRUSTED_PROXIES", "WW_DATABASE_URL", "WW_REDIS_URL", "WW_KAFKA_BROKERS", "WW_JWT_KEYS"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("ww runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn serving_auth_without_a_proxy_policy_is_refused_with_the_variable_to_set() {
    let env = [("WW_DATABASE_URL", "postgres://ww@127.0.0.1:1/ww"), ("WW_JWT_KEYS", KEYS)];
    let out = ww(&["serve", "auth", "user"], &env);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("WW_TRUSTED_PROXIES") && said.contains("none"), "{said}");
}

#[test]
fn a_connection_error_does_not_print_the_password() {
    let env = [
        ("WW_DATABASE_URL", "postgres://ww:db-hunter2@127.0.0.1:1/ww"),
        ("WW_REDIS_URL", "redis://:redis-hunter2@127.0.0.1:1/"),
        ("WW_JWT_KEYS", KEYS),
        ("WW_TRUSTED_PROXIES", "none"),
        ("WW_KAFKA_BROKERS", "127.0.0.1:1"),
    ];
    let out = ww(&["serve", "auth"], &env);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("redis://:***@127.0.0.1:1/") || said.contains("postgres://ww:***@"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

#[test]
fn help_does_not_print_secrets_from_the_environment() {
    let env = [
        ("WW_DATABASE_URL", "postgres://ww:db-hunter2@db/ww"),
        ("WW_REDIS_URL", "redis://:redis-hunter2@cache:6379/"),
        ("WW_JWT_KEYS", "k1=jwt-hunter2-jwt-hunter2-jwt-hunter2-0123"),
    ];
    for args in [&["serve", "--help"][..], &["admin", "grant-role", "--help"][..]] {
        let out = ww(args, &env);
        assert!(out.status.success(), "{args:?}");
        let said = text(&out);
        assert!(said.contains("WW_DATABASE_URL"), "{said}");
        assert!(!said.contains("hunter2"), "{args:?}: {said}");
    }
}

#[test]
fn duplicate_key_ids_are_refused_at_start() {
    let keys = "k1=0123456789abcdef0123456789abcdef,k1=fedcba9876543210fedcba9876543210";
    let out = ww(&["serve", "user"], &[("WW_DATABASE_URL", "postgres://ww@127.0.0.1:1/ww"), ("WW_JWT_KEYS", keys)]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("appears twice") && said.contains("WW_JWT_KEYS"), "{said}");
    assert!(!said.contains("0123456789abcdef"), "the secrets are not quoted: {said}");
}

#[test]
fn a_malformed_database_url_is_not_quoted_with_its_password() {
    let out = ww(&["serve", "user"], &[("WW_DATABASE_URL", "mysql://ww:db-hunter2@db/ww"), ("WW_JWT_KEYS", KEYS)]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("postgres://") && !said.contains("hunter2"), "{said}");
}

#[test]
fn dev_refuses_a_non_loopback_address_before_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ww(&["dev", "--listen", "0.0.0.0:0", "--data-dir", data.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--allow-non-loopback"), "{}", text(&out));
    assert!(!data.exists(), "nothing was created");
}
