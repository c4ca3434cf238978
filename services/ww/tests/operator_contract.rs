//! The contract between the operator and the issuers it starts: every setting
//! `ww serve coupon-issuer` needs, read from its real argument definitions (by running the real
//! binary with `--check-config`), is in the Deployment the operator builds, and every variable
//! the operator sets is one `ww serve` reads.

use std::collections::BTreeMap;
use std::process::Command;

use clap::CommandFactory;
use k8s_openapi::api::core::v1::EnvVar;
use operator::config::WorkloadConfig;

/// The issuer's environment as the operator writes it, with each Secret reference replaced by a
/// value of the right shape (as the kubelet would).
fn issuer_env() -> BTreeMap<String, String> {
    operator::children::issuer_env("rainy-day-pass", &WorkloadConfig::example())
        .into_iter()
        .map(|EnvVar { name, value, value_from }| {
            let value = match (value, value_from) {
                (Some(v), _) => v,
                (None, Some(_)) => match name.as_str() {
                    "WW_DATABASE_URL" => "postgres://ww@db:5432/ww".to_owned(),
                    "WW_REDIS_URL" => "redis://redis:6379/".to_owned(),
                    "WW_KAFKA_BROKERS" => "kafka-0:9092".to_owned(),
                    "WW_JWT_KEYS" => "k1=0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(),
                    other => panic!("the operator takes {other} from a Secret; give it a value here"),
                },
                (None, None) => panic!("{name} has no value"),
            };
            (name, value)
        })
        .collect()
}

fn check_config(env: &BTreeMap<String, String>) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ww"))
        .args(["serve", "--check-config"])
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_issuer_deployment_carries_every_setting_the_issuer_requires() {
    let env = issuer_env();
    let (ok, output) = check_config(&env);
    assert!(ok, "ww serve --check-config with the operator's environment: {output}");
    assert!(output.contains("CouponIssuer"), "{output}");
}

#[test]
fn each_required_setting_is_really_required() {
    // Proves the check above can fail: without any one of these the issuer refuses to start.
    let env = issuer_env();
    for required in ["WW_SERVICES", "WW_CAMPAIGN", "WW_DATABASE_URL", "WW_REDIS_URL", "WW_KAFKA_BROKERS", "WW_JWT_KEYS"]
    {
        let mut without = env.clone();
        assert!(without.remove(required).is_some(), "the operator sets {required}");
        let (ok, output) = check_config(&without);
        assert!(!ok, "ww serve started without {required}: {output}");
    }
}

#[test]
fn every_variable_the_operator_sets_is_one_ww_serve_reads() {
    let cli = ww::cli::Cli::command();
    let serve = cli.find_subcommand("serve").unwrap();
    let known: Vec<String> =
        serve.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect();
    for name in issuer_env().keys() {
        assert!(known.contains(name), "the operator sets {name}, which `ww serve` does not read");
    }
}
