//! Writing children, shared by both controllers: server-side apply with the one field manager,
//! only when the watched copy lacks a field of the desired object (zero writes once steady),
//! deletes that take 404 as done, 409s retried in place, and every write counted.

use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::children::FIELD_MANAGER;
use crate::controller::{Error, Writes};

/// Whether `observed` already holds every field of `desired` with the same value (fields the API
/// server or other controllers add are ignored).
pub fn covers(observed: &Value, desired: &Value) -> bool {
    covers_at(observed, desired, false)
}

/// `amounts`: `desired` is a `requests` or `limits` map, whose quantities the API server stores
/// in its canonical form (`0.5` becomes `500m`, `1000m` becomes `1`): equal amounts cover.
fn covers_at(observed: &Value, desired: &Value, amounts: bool) -> bool {
    match (observed, desired) {
        (Value::Object(o), Value::Object(d)) => d.iter().all(|(k, v)| {
            o.get(k).is_some_and(|ov| {
                if amounts { same_amount(ov, v) } else { covers_at(ov, v, k == "requests" || k == "limits") }
            })
        }),
        (Value::Array(o), Value::Array(d)) => {
            o.len() == d.len() && o.iter().zip(d).all(|(a, b)| covers_at(a, b, false))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

fn same_amount(observed: &Value, desired: &Value) -> bool {
    use crate::chat::autoscaling::quantity;
    match (observed.as_str(), desired.as_str()) {
        (Some(a), Some(b)) if a != b => match (quantity(a), quantity(b)) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => false,
        },
        _ => covers_at(observed, desired, false),
    }
}

/// Applies `desired` unless the watched copy in `store` already covers it.
pub async fn apply_one<K>(
    client: &Client,
    writes: &Writes,
    store: &Store<K>,
    namespace: &str,
    desired: &K,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(desired)?;
    if let Some(map) = body.as_object_mut() {
        map.insert("apiVersion".to_owned(), K::api_version(&()).into());
        map.insert("kind".to_owned(), K::kind(&()).into());
    }
    if let Some(observed) = store.get(&ObjectRef::new(&name).within(namespace))
        && covers(&serde_json::to_value(observed.as_ref())?, &body)
    {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    retry_conflicts(|| api.patch(&name, &params, &patch)).await?;
    count_write(writes, K::kind(&()).as_ref(), "apply");
    Ok(())
}

/// A forced apply does not conflict on fields, but an API server may still answer 409 (e.g. a
/// storage-level conflict under load): try again at once, a few times, before backing off.
pub async fn retry_conflicts<T, F, Fut>(mut write: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0u32;
    loop {
        match write().await {
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 3 => {
                attempt += 1;
                metrics::counter!("ww_operator_conflicts_retried_total").increment(1);
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

pub fn count_write(writes: &Writes, kind: &str, verb: &'static str) {
    writes.children.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("ww_operator_api_writes_total", "kind" => kind.to_owned(), "verb" => verb).increment(1);
}

/// Deletes an object; one already gone is done.
pub async fn delete<K>(client: &Client, writes: &Writes, namespace: &str, name: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + Debug + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams::default();
    match retry_conflicts(|| api.delete(name, &params)).await {
        Ok(_) => {
            count_write(writes, K::kind(&()).as_ref(), "delete");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::covers;

    #[test]
    fn amounts_the_api_server_rewrote_cover_what_was_asked_and_nothing_else_does() {
        let stored = json!({"spec": {"image": "ww:1", "resources": {
            "requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "1"}}}});
        let asked = json!({"spec": {"image": "ww:1", "resources": {
            "requests": {"cpu": "0.5", "memory": "268435456"}, "limits": {"cpu": "1000m"}}}});
        assert!(covers(&stored, &asked), "the same amounts, written otherwise");
        let more = json!({"spec": {"resources": {"requests": {"cpu": "0.6"}}}});
        assert!(!covers(&stored, &more), "another amount is a change");
        // Only amounts compare as numbers: an image tag never does.
        let tag = json!({"spec": {"image": "ww:1.0"}});
        assert!(!covers(&json!({"spec": {"image": "ww:1"}}), &tag));
        let labels = json!({"metadata": {"labels": {"requests": "1.0"}}});
        assert!(!covers(&json!({"metadata": {"labels": {"requests": "1"}}}), &labels), "a label is text");
    }
}
