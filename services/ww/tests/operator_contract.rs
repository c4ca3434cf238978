//! The contract between the operator and the workloads it starts: every setting
//! `ww serve coupon-issuer` (and `chat-gateway`, `chat-persister`, `chat` for a ChatCluster) needs,
//! read from its real argument definitions (by running the real binary with `--check-config`), is
//! in the Deployment the operator builds, and every variable the operator sets is one `ww serve`
//! reads.

use std::collections::BTreeMap;
use std::process::Command;

use clap::CommandFactory;
use k8s_openapi::api::core::v1::EnvVar;
use operator::config::WorkloadConfig;

/// The issuer's environment as the operator writes it, with each Secret reference replaced by a
/// value of the right shape (as the kubelet would).
fn issuer_env() -> BTreeMap<String, String> {
    resolved(operator::children::issuer_env("rainy-day-pass", &WorkloadConfig::example()))
}

fn resolved(env: Vec<EnvVar>) -> BTreeMap<String, String> {
    env.into_iter()
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

/// A ChatCluster's pods: the environment the operator writes for each role of the samples.
mod chat {
    use operator::chat::ChatCluster;
    use operator::chat::children::{Role, role_env};

    use super::*;

    fn sample(file: &str) -> ChatCluster {
        let path = format!("{}/../../config/samples/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn env_of(cluster: &ChatCluster, role: Role, kafka_prefix: &str) -> BTreeMap<String, String> {
        let name = cluster.metadata.name.as_deref().unwrap();
        resolved(role_env(role, name, &cluster.spec, &WorkloadConfig::example(), kafka_prefix))
    }

    fn samples() -> [ChatCluster; 2] {
        [sample("chat-cluster-default.yaml"), sample("chat-cluster-snow-festival.yaml")]
    }

    #[test]
    fn each_chat_role_starts_with_the_environment_the_operator_writes() {
        for cluster in samples() {
            for (role, shown) in
                [(Role::Gateway, "ChatGateway"), (Role::Persister, "ChatPersister"), (Role::Api, "Chat")]
            {
                let env = env_of(&cluster, role, "staging.");
                let (ok, output) = check_config(&env);
                assert!(ok, "{:?} {role:?}: ww serve --check-config: {output}", cluster.metadata.name);
                assert!(output.contains(&format!("[{shown}]")), "{output}");
            }
        }
    }

    #[test]
    fn the_roles_read_the_clusters_settings_as_the_operator_means_them() {
        // The values parse through the roles' own argument definitions (ChatConfig), so a value
        // the roles refuse (a prefix with an upper-case letter, say) fails here.
        let cli = ww::cli::Cli::command();
        let snow = &samples()[1];
        let env = env_of(snow, Role::Persister, "staging.");
        let mut args = vec!["ww".to_owned(), "serve".to_owned()];
        for (name, value) in &env {
            let arg = cli
                .find_subcommand("serve")
                .unwrap()
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e.to_string_lossy() == name.as_str()));
            let arg = arg.unwrap_or_else(|| panic!("{name} is not read by ww serve"));
            match arg.get_long() {
                Some(long) => args.push(format!("--{long}={value}")),
                None => args.push(value.clone()),
            }
        }
        let matches = ww::cli::Cli::command().try_get_matches_from(&args).unwrap();
        let (_, serve) = matches.subcommand().unwrap();
        assert_eq!(serve.get_one::<String>("chat_cluster").map(String::as_str), Some("snow-festival"));
        assert_eq!(serve.get_one::<String>("chat_room_prefix").map(String::as_str), Some("snow-festival-"));
        assert_eq!(serve.get_one::<u64>("chat_history_size"), Some(&200));
        assert_eq!(serve.get_one::<u64>("chat_persist_batch"), Some(&1000));
        // The topic the operator creates is the one the roles use.
        let config = ::chat::ChatConfig { chat_cluster: "snow-festival".to_owned(), ..::chat::ChatConfig::default() };
        assert_eq!(
            operator::chat::resource::topic_name("snow-festival", "staging."),
            format!("staging.{}", config.topic())
        );
        let default = ::chat::ChatConfig::default();
        assert_eq!(operator::chat::resource::topic_name("default", ""), default.topic());
        assert_eq!(default.chat_room_prefix, "", "the default cluster's pods get no prefix variable: the empty one");

        let mut refused = env.clone();
        refused.insert("WW_CHAT_ROOM_PREFIX".to_owned(), "Snow-".to_owned());
        let (ok, output) = check_config(&refused);
        assert!(!ok, "a prefix the roles refuse was accepted: {output}");
    }

    #[test]
    fn each_setting_a_chat_role_requires_is_really_required() {
        let snow = &samples()[1];
        for role in Role::ALL {
            let env = env_of(snow, role, "");
            for required in ["WW_SERVICES", "WW_DATABASE_URL", "WW_REDIS_URL", "WW_KAFKA_BROKERS", "WW_JWT_KEYS"] {
                let mut without = env.clone();
                assert!(without.remove(required).is_some(), "the operator sets {required} for {role:?}");
                let (ok, output) = check_config(&without);
                assert!(!ok, "ww serve {} started without {required}: {output}", role.service());
            }
        }
    }

    #[test]
    fn every_variable_the_operator_sets_for_chat_is_one_ww_serve_reads() {
        let cli = ww::cli::Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        let known: Vec<String> =
            serve.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect();
        for cluster in samples() {
            for role in Role::ALL {
                for name in env_of(&cluster, role, "staging.").keys() {
                    assert!(known.contains(name), "the operator sets {name}, which `ww serve` does not read");
                }
            }
        }
    }
}
