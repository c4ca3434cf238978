//! `ww campaign check`: everything the API server and the operator will say about a
//! `CouponCampaign`, before it is applied, every problem at once with its field path.
//!
//! Three layers, in the order the platform meets them: the resource's shape (types, unknown
//! fields, enums: what the schema says, read through the same serde types the schema is generated
//! from), the schema's CEL rules (`x-kubernetes-validations`, evaluated by `kube-cel` on the
//! generated schema itself, transition rules included when the object it replaces is given), and
//! the campaign rules of [`Campaign::new`], which the operator reports as `InvalidSpec`.

use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::resource::{API_VERSION, CouponCampaign, KIND};
use crate::rules::Campaign;

/// Which layer found a problem: `Shape` and `Cel` are refused by the API server, `Rules` by the
/// operator (the object is stored, its status says `InvalidSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Shape,
    Cel,
    Rules,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub layer: Layer,
    /// Dotted path of the field, e.g. `spec.quota.dailyQuantity`; empty for the whole object.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = match self.layer {
            Layer::Shape => "schema",
            Layer::Cel => "CEL rule",
            Layer::Rules => "campaign rules",
        };
        if self.path.is_empty() {
            write!(f, "{} ({who})", self.message)
        } else {
            write!(f, "{}: {} ({who})", self.path, self.message)
        }
    }
}

/// The generated `openAPIV3Schema` of the resource, as the API server holds it.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = serde_json::to_value(CouponCampaign::crd()).unwrap_or(Value::Null);
        crd.pointer("/spec/versions/0/schema/openAPIV3Schema").cloned().unwrap_or(Value::Null)
    })
}

/// Reads one resource through the types the schema is generated from; a problem names the field.
pub fn read(object: &Value) -> Result<CouponCampaign, Problem> {
    serde_path_to_error::deserialize(object.clone()).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        Problem { layer: Layer::Shape, path, message: error.into_inner().to_string() }
    })
}

/// Every problem with `object` (one resource, as JSON), and with changing `old` into it when given.
/// Empty when the API server would store it and the operator would run it.
pub fn check(object: &Value, old: Option<&Value>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let shape = |path: &str, message: String| Problem { layer: Layer::Shape, path: path.to_owned(), message };
    if object.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        problems.push(shape("apiVersion", format!("must be `{API_VERSION}`")));
    }
    if object.get("kind").and_then(Value::as_str) != Some(KIND) {
        problems.push(shape("kind", format!("must be `{KIND}`")));
    }
    let resource = match read(object) {
        Ok(resource) => resource,
        Err(problem) => {
            problems.push(problem);
            return problems;
        }
    };
    let validator = kube_cel::Validator::new();
    if let Err(errors) = validator.validate(schema(), object, old) {
        problems.extend(errors.into_iter().map(|e| Problem {
            layer: Layer::Cel,
            path: e.field_path.trim_start_matches('.').to_owned(),
            message: e.message,
        }));
    }
    let name = resource.metadata.name.unwrap_or_default();
    if let Err(invalid) = Campaign::new(&name, resource.spec) {
        // The rules restate the CEL rules; a field the API server already refuses is said once.
        let refused: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
        problems.extend(
            invalid
                .problems
                .into_iter()
                .map(|p| match p.split_once(": ") {
                    Some((path, message)) => {
                        Problem { layer: Layer::Rules, path: path.to_owned(), message: message.to_owned() }
                    }
                    None => Problem { layer: Layer::Rules, path: String::new(), message: p },
                })
                .filter(|p| !refused.contains(&p.path)),
        );
    }
    problems
}
