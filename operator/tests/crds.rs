//! The CustomResourceDefinitions as the API server will receive them: current with the types,
//! structural (what the API server demands of a CRD schema), every sample valid against the
//! schema and its CEL rules, and every CEL rule tried with an object it accepts and one it refuses
//! by a real CEL evaluator (`kube-cel`).

use std::path::{Path, PathBuf};

use campaign::check::{Layer, Problem, check, schema};
use serde::Deserialize;
use serde_json::{Value, json};

const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds");
const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/samples");

#[test]
fn the_committed_crds_are_what_the_types_generate() {
    for (file, yaml) in operator::crds::all().unwrap() {
        let path = Path::new(CRDS).join(&file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == yaml,
            "{} differs from the types; run `cargo run -p ww-operator --bin crdgen` and commit the result",
            path.display()
        );
    }
}

/// The rules the API server applies to a CRD's schema before it accepts the CRD at all
/// (apiextensions "structural schema"): every node has a type, `properties` and
/// `additionalProperties` never meet, no `$ref`, and `x-kubernetes-validations` only where the
/// node is typed.
fn structural_problems(schema: &Value) -> Vec<String> {
    fn walk(node: &Value, path: &str, problems: &mut Vec<String>) {
        let Some(map) = node.as_object() else { return };
        let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&json!(true));
        let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
        if !map.contains_key("type") && !int_or_string && !preserve {
            problems.push(format!("{path}: no type"));
        }
        if map.contains_key("properties") && map.contains_key("additionalProperties") {
            problems.push(format!("{path}: both properties and additionalProperties"));
        }
        for forbidden in ["$ref", "definitions", "$defs", "const"] {
            if map.contains_key(forbidden) {
                problems.push(format!("{path}: {forbidden}"));
            }
        }
        for combinator in ["oneOf", "anyOf", "allOf"] {
            if let Some(branches) = map.get(combinator).and_then(Value::as_array) {
                for branch in branches {
                    // Branches may only restrict values, never declare types or defaults.
                    if branch.get("type").is_some() || branch.get("default").is_some() {
                        problems.push(format!("{path}.{combinator}: a branch declares a type or default"));
                    }
                }
            }
        }
        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                walk(child, &format!("{path}.{name}"), problems);
            }
        }
        if let Some(items) = map.get("items") {
            walk(items, &format!("{path}[]"), problems);
        }
        if let Some(extra) = map.get("additionalProperties").filter(|v| v.is_object()) {
            walk(extra, &format!("{path}{{}}"), problems);
        }
    }
    let mut problems = Vec::new();
    walk(schema, "", &mut problems);
    problems
}

#[test]
fn the_schema_is_structural() {
    let problems = structural_problems(schema());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_crd_names_the_resource_as_people_will_type_it() {
    let crd = operator::crds::all().unwrap().remove(0).1;
    let crd: Value = serde_yaml::from_str(&crd).unwrap();
    assert_eq!(crd["metadata"]["name"], "couponcampaigns.weatherwise.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["cc"]));
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["subresources"]["status"], json!({}));
    let columns: Vec<&str> =
        version["additionalPrinterColumns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["Phase", "Issued", "Remaining", "Next", "Ready", "Age"]);
}

/// Every field under `spec` and `status` carries a description, which is what `kubectl explain`
/// prints.
fn unexplained(schema: &Value) -> Vec<String> {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let child_path = format!("{path}.{name}");
                if child.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                    missing.push(child_path.clone());
                }
                walk(child, &child_path, missing);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&schema["properties"]["spec"], "spec", &mut missing);
    walk(&schema["properties"]["status"], "status", &mut missing);
    missing
}

#[test]
fn every_field_is_explained() {
    let missing = unexplained(schema());
    assert!(missing.is_empty(), "fields without a description: {missing:#?}");
}

fn samples() -> Vec<(PathBuf, Value)> {
    samples_of("CouponCampaign")
}

fn samples_of(kind: &str) -> Vec<(PathBuf, Value)> {
    let mut found = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(SAMPLES).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap();
            if value["kind"] == kind {
                found.push((path.clone(), value));
            }
        }
    }
    found
}

#[test]
fn every_sample_passes_the_schema_its_cel_rules_and_the_campaign_rules() {
    let samples = samples();
    assert!(samples.len() >= 3, "the samples were found");
    for (path, sample) in samples {
        assert_eq!(check(&sample, None), [], "{}", path.display());
        assert_eq!(validate_with_json_schema(&sample), Vec::<String>::new(), "{}", path.display());
    }
}

/// The schema read by a JSON Schema validator (as an API server reads types, bounds, enums and
/// patterns), for objects that must agree with what `check` says.
fn validate_with_json_schema(object: &Value) -> Vec<String> {
    validate_against(schema(), object)
}

fn validate_against(schema: &Value, object: &Value) -> Vec<String> {
    let validator = jsonschema::options().should_validate_formats(true).build(schema).unwrap();
    validator.iter_errors(object).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

fn minimal() -> Value {
    json!({
        "apiVersion": "weatherwise.io/v1alpha1",
        "kind": "CouponCampaign",
        "metadata": {"name": "rainy-day-pass", "namespace": "weatherwise"},
        "spec": {
            "displayName": "Rainy Day Pass",
            "coupon": {"title": "Umbrella discount", "benefit": "20% off an umbrella", "validityDays": 7},
            "schedule": {"timeZone": "Asia/Seoul", "startDate": "2026-12-07", "endDate": "2026-12-13", "opensAt": "10:00"},
            "quota": {"dailyQuantity": 1000}
        }
    })
}

fn with(pointer: &str, value: Value) -> Value {
    let mut object = minimal();
    set(&mut object, pointer, value);
    object
}

fn set(object: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent =
        if parent.is_empty() { &mut *object } else { object.pointer_mut(parent).unwrap_or_else(|| panic!("{parent}")) };
    if parent.get(key).is_none() && !parent.is_object() {
        panic!("{pointer}");
    }
    parent.as_object_mut().unwrap().insert(key.to_owned(), value);
}

fn cel_problems(object: &Value, old: Option<&Value>) -> Vec<Problem> {
    check(object, old).into_iter().filter(|p| p.layer == Layer::Cel).collect()
}

/// Each CEL rule of the schema, with an object it accepts and one it refuses.
#[test]
fn every_cel_rule_accepts_a_valid_object_and_refuses_an_invalid_one() {
    let cases: [(&str, Value, Value, &str); 6] = [
        (
            "end date not before start date",
            with("/spec/schedule/endDate", json!("2026-12-07")),
            with("/spec/schedule/endDate", json!("2026-12-06")),
            "endDate must not be before startDate",
        ),
        (
            "closesAt after opensAt, seconds or not",
            with("/spec/schedule/closesAt", json!("10:00:01")),
            with("/spec/schedule/closesAt", json!("10:00:00")),
            "closesAt must be later than opensAt",
        ),
        (
            "daily quantity within the total",
            with("/spec/quota/totalQuantity", json!(1000)),
            with("/spec/quota/totalQuantity", json!(999)),
            "dailyQuantity must not exceed totalQuantity",
        ),
        (
            "idle <= min <= max",
            with("/spec/workload", json!({"replicas": {"idle": 2, "min": 2, "max": 2}})),
            with("/spec/workload", json!({"replicas": {"idle": 3, "min": 2, "max": 10}})),
            "idle <= min <= max",
        ),
        (
            "min <= max",
            with("/spec/workload", json!({"replicas": {"min": 1, "max": 1}})),
            with("/spec/workload", json!({"replicas": {"min": 5, "max": 4}})),
            "idle <= min <= max",
        ),
        (
            "a DNS label for a name",
            with("/metadata/name", json!("a-b-1")),
            with("/metadata/name", json!("a.b")),
            "metadata.name must be a DNS label",
        ),
    ];
    for (rule, valid, invalid, message) in cases {
        assert_eq!(cel_problems(&valid, None), [], "{rule}: the valid object");
        let problems = cel_problems(&invalid, None);
        assert!(
            problems.iter().any(|p| p.message.contains(message)),
            "{rule}: the invalid object was not refused with `{message}`: {problems:?}"
        );
    }
}

fn started(object: &Value) -> Value {
    let mut object = object.clone();
    set(&mut object, "/status", json!({"phase": "Open", "startedAt": "2026-12-07T01:00:00Z"}));
    object
}

/// Once the first day began, the rules that decide who may claim and what a day is stay put;
/// quantities may change (from the next campaign day, which the issuer applies).
#[test]
fn a_started_campaign_keeps_its_time_zone_start_date_per_user_and_eligibility() {
    let before = minimal();
    let changes = [
        ("/spec/schedule/timeZone", json!("Europe/London")),
        ("/spec/schedule/startDate", json!("2026-12-08")),
        ("/spec/quota/perUser", json!(2)),
        ("/spec/eligibility", json!({"mission": "None"})),
    ];
    for (pointer, value) in changes {
        let mut after = started(&before);
        set(&mut after, pointer, value.clone());
        assert_eq!(cel_problems(&after, Some(&before)), [], "{pointer} may change before the campaign starts");
        let problems = cel_problems(&after, Some(&started(&before)));
        assert!(
            problems.iter().any(|p| p.message.contains("cannot change once the campaign has started")),
            "{pointer} changed on a started campaign: {problems:?}"
        );
    }
    let mut more = started(&before);
    set(&mut more, "/spec/quota/dailyQuantity", json!(2000));
    set(&mut more, "/spec/schedule/endDate", json!("2026-12-20"));
    set(&mut more, "/spec/suspend", json!(true));
    assert_eq!(cel_problems(&more, Some(&started(&before))), [], "quantities, the end and suspend may change");
}

/// Out-of-range values, wrong types, unknown fields and bad enums are refused by the schema
/// (read by a JSON Schema validator) and by `check`, which reads them through the same types.
#[test]
fn the_schema_and_check_refuse_the_same_malformed_objects() {
    let malformed = [
        with("/spec/quota/dailyQuantity", json!(0)),
        with("/spec/quota/dailyQuantity", json!(10_000_001)),
        with("/spec/quota/dailyQuantity", json!("many")),
        with("/spec/quota/perUser", json!(101)),
        with("/spec/coupon/validityDays", json!(366)),
        with("/spec/displayName", json!("x".repeat(81))),
        with("/spec/displayName", json!("   ")),
        with("/spec/schedule/timeZone", json!("Asia/Seul")),
        with("/spec/schedule/opensAt", json!("24:00")),
        with("/spec/schedule/opensAt", json!("9:00")),
        with("/spec/schedule/startDate", json!("2026-13-01")),
        with("/spec/eligibility", json!({"mission": "verifiedSameDay"})),
        with("/spec/workload", json!({"prewarmSeconds": 3601})),
        with("/spec/workload", json!({"targetCpuUtilization": 5})),
        with("/spec/workload", json!({"replicas": {"max": 1001}})),
    ];
    for object in malformed {
        let by_schema = validate_with_json_schema(&object);
        let by_check: Vec<Problem> = check(&object, None).into_iter().filter(|p| p.layer != Layer::Cel).collect();
        assert!(!by_schema.is_empty(), "the schema accepted {}", object["spec"]);
        assert!(!by_check.is_empty(), "check accepted {}", object["spec"]);
    }
}

#[test]
fn check_reports_every_problem_with_its_field_path() {
    let mut object = with("/spec/quota/totalQuantity", json!(10));
    set(&mut object, "/spec/schedule/endDate", json!("2026-12-01"));
    let paths: Vec<String> = check(&object, None).into_iter().map(|p| p.path).collect();
    assert!(paths.contains(&"spec.schedule.endDate".to_owned()), "{paths:?}");
    assert!(paths.contains(&"spec.quota.dailyQuantity".to_owned()), "{paths:?}");
    let unknown = with("/spec/quota/perDay", json!(1));
    let problems = check(&unknown, None);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "spec.quota.perDay");
    assert!(problems[0].message.contains("unknown field `perDay`"), "{}", problems[0]);
}

/// The same for `ChatCluster`: its schema, samples and CEL rules (transition rules included),
/// with the rules the operator restates in Rust agreeing.
mod chat {
    use std::sync::OnceLock;

    use kube::CustomResourceExt;
    use operator::chat::{ChatCluster, ChatClusterSpec};

    use super::*;

    fn chat_schema() -> &'static Value {
        static SCHEMA: OnceLock<Value> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let crd = serde_json::to_value(ChatCluster::crd()).unwrap();
            crd.pointer("/spec/versions/0/schema/openAPIV3Schema").cloned().unwrap()
        })
    }

    /// What the API server's CEL evaluation says, as `(field path, message)`.
    fn cel(object: &Value, old: Option<&Value>) -> Vec<(String, String)> {
        match kube_cel::Validator::new().validate(chat_schema(), object, old) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| (e.field_path, e.message)).collect(),
        }
    }

    fn restated(object: &Value) -> Vec<String> {
        let spec: ChatClusterSpec = serde_json::from_value(object["spec"].clone()).unwrap();
        spec.problems(object["metadata"]["name"].as_str().unwrap())
    }

    fn minimal() -> Value {
        json!({
            "apiVersion": "weatherwise.io/v1alpha1",
            "kind": "ChatCluster",
            "metadata": {"name": "snow-festival", "namespace": "weatherwise"},
            "spec": {"roomPrefix": "snow-festival-"}
        })
    }

    fn with(pointer: &str, value: Value) -> Value {
        let mut object = minimal();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let mut node = &mut object;
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            if node.get(part).is_none() {
                node[part] = json!({});
            }
            node = node.get_mut(part).unwrap();
        }
        node[key] = value;
        object
    }

    #[test]
    fn the_schema_is_structural_and_every_field_is_explained() {
        let problems = structural_problems(chat_schema());
        assert!(problems.is_empty(), "{problems:#?}");
        let missing = unexplained(chat_schema());
        assert!(missing.is_empty(), "fields without a description: {missing:#?}");
    }

    #[test]
    fn the_crd_names_the_resource_as_people_will_type_it() {
        let (file, crd) = operator::crds::all().unwrap().remove(1);
        assert_eq!(file, "chatclusters.weatherwise.io.yaml");
        let crd: Value = serde_yaml::from_str(&crd).unwrap();
        assert_eq!(crd["metadata"]["name"], "chatclusters.weatherwise.io");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["chat"]));
        assert_eq!(crd["spec"]["names"]["categories"], json!(["weatherwise"]));
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], json!({}));
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(columns, ["Prefix", "Partitions", "Gateways", "Connections", "Ready", "Age"]);
    }

    #[test]
    fn every_sample_passes_the_schema_its_cel_rules_and_the_restated_rules() {
        let samples = samples_of("ChatCluster");
        let prefixes: Vec<&str> = samples.iter().map(|(_, s)| s["spec"]["roomPrefix"].as_str().unwrap()).collect();
        assert_eq!(prefixes, ["", "snow-festival-"], "the default cluster and one event's");
        for (path, sample) in &samples {
            assert_eq!(validate_against(chat_schema(), sample), Vec::<String>::new(), "{}", path.display());
            assert_eq!(cel(sample, None), [], "{}", path.display());
            // An edit that changes nothing passes the transition rules too.
            assert_eq!(cel(sample, Some(sample)), [], "{}", path.display());
            assert_eq!(restated(sample), Vec::<String>::new(), "{}", path.display());
            let typed: ChatCluster = serde_json::from_value(sample.clone()).unwrap();
            assert_eq!(typed.metadata.name.as_deref(), sample["metadata"]["name"].as_str());
        }
    }

    /// Each CEL rule with an object it accepts and one it refuses; the operator's restated rules
    /// refuse the same.
    #[test]
    fn every_cel_rule_accepts_a_valid_object_and_refuses_an_invalid_one() {
        let cases = [
            (
                "a cluster name of at most 40",
                with("/metadata/name", json!("a".repeat(40))),
                with("/metadata/name", json!("a".repeat(41))),
                "metadata.name is the cluster's name",
            ),
            (
                "a DNS label for a name (no '_', which the chat roles would take)",
                with("/metadata/name", json!("snow-2026")),
                with("/metadata/name", json!("snow_2026")),
                "metadata.name is the cluster's name",
            ),
            (
                "min <= max",
                with("/spec/gateway", json!({"replicas": {"min": 3, "max": 3}})),
                with("/spec/gateway", json!({"replicas": {"min": 4, "max": 3}})),
                "min <= max",
            ),
            (
                "persisters within the partitions",
                with("/spec/persister", json!({"replicas": 6})),
                with("/spec/persister", json!({"replicas": 7})),
                "must not exceed partitions",
            ),
            (
                "persisters within the partitions asked for",
                {
                    let mut o = with("/spec/partitions", json!(2));
                    o["spec"]["persister"] = json!({"replicas": 2});
                    o
                },
                {
                    let mut o = with("/spec/partitions", json!(2));
                    o["spec"]["persister"] = json!({"replicas": 3});
                    o
                },
                "must not exceed partitions",
            ),
        ];
        for (rule, valid, invalid, message) in cases {
            assert_eq!(cel(&valid, None), [], "{rule}: the valid object");
            assert_eq!(restated(&valid), Vec::<String>::new(), "{rule}: the valid object, restated");
            let problems = cel(&invalid, None);
            assert!(
                problems.iter().any(|(_, m)| m.contains(message)),
                "{rule}: the invalid object was not refused with `{message}`: {problems:?}"
            );
            let restated = restated(&invalid);
            assert!(!restated.is_empty(), "{rule}: the operator's rules accept what CEL refuses");
        }
    }

    /// Transition rules (`oldSelf`): the prefix never changes, partitions never decrease.
    #[test]
    fn an_edit_may_grow_partitions_but_not_shrink_them_nor_move_the_prefix() {
        let before = with("/spec/partitions", json!(6));
        let grown = with("/spec/partitions", json!(12));
        assert_eq!(cel(&grown, Some(&before)), [], "growing is allowed");
        let shrunk = with("/spec/partitions", json!(3));
        let problems = cel(&shrunk, Some(&before));
        assert!(problems.iter().any(|(_, m)| m.contains("partitions cannot decrease")), "{problems:?}");
        assert_eq!(cel(&shrunk, None), [], "a new object may have any count");
        // Absent means the default (6): from 8 to absent is a decrease.
        let mut defaulted = minimal();
        defaulted["spec"].as_object_mut().unwrap().remove("partitions");
        let eight = with("/spec/partitions", json!(8));
        assert!(cel(&defaulted, Some(&eight)).iter().any(|(_, m)| m.contains("partitions cannot decrease")));

        let moved = with("/spec/roomPrefix", json!("snow-fest-"));
        let problems = cel(&moved, Some(&before));
        assert!(problems.iter().any(|(_, m)| m.contains("roomPrefix cannot change")), "{problems:?}");
        let mut emptied = minimal();
        emptied["spec"].as_object_mut().unwrap().remove("roomPrefix");
        assert!(cel(&emptied, Some(&before)).iter().any(|(_, m)| m.contains("roomPrefix cannot change")));
        // Anything else may change.
        let mut other = before.clone();
        other["spec"]["historySize"] = json!(500);
        other["spec"]["gateway"] = json!({"replicas": {"min": 1, "max": 100}, "autoscaleOn": "Cpu"});
        assert_eq!(cel(&other, Some(&before)), []);
    }

    /// Out-of-range values, wrong types, unknown fields and bad enums are refused by the schema
    /// and by the types the operator reads the object through.
    #[test]
    fn the_schema_and_the_types_refuse_the_same_malformed_objects() {
        let malformed = [
            with("/spec/partitions", json!(0)),
            with("/spec/partitions", json!(1025)),
            with("/spec/historySize", json!(100_001)),
            with("/spec/roomPrefix", json!("Snow-")),
            with("/spec/roomPrefix", json!("-snow")),
            with("/spec/roomPrefix", json!("a".repeat(41))),
            with("/spec/gateway", json!({"connectionsPerPod": 5})),
            with("/spec/gateway", json!({"autoscaleOn": "cpu"})),
            with("/spec/gateway", json!({"replicas": {"max": 1001}})),
            with("/spec/gateway", json!({"targetCpuUtilization": 101})),
            with("/spec/persister", json!({"batchSize": 5001})),
            with("/spec/api", json!({"replicas": 0})),
        ];
        for object in malformed {
            let by_schema = validate_against(chat_schema(), &object);
            assert!(!by_schema.is_empty(), "the schema accepted {}", object["spec"]);
            let by_types = serde_json::from_value::<ChatCluster>(object.clone())
                .map(|c| c.spec.problems(c.metadata.name.as_deref().unwrap_or_default()));
            assert!(by_types.is_err() || by_types.as_ref().is_ok_and(|p| !p.is_empty()), "accepted {}", object["spec"]);
        }
        // An unknown field: the API server prunes it or, with strict field validation (kubectl's
        // default), refuses it; the operator's types refuse it.
        let unknown = with("/spec/topicPartitions", json!(3));
        assert!(serde_json::from_value::<ChatCluster>(unknown).is_err());
    }
}
