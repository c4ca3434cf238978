//! An in-memory stand-in for the Kubernetes API server, spoken to over real HTTP by a real
//! `kube::Client`: the controller tests and `ww-operator bench` run the operator against it.
//!
//! What it does as the API server does: namespaced and all-namespace list, get, create, replace
//! with `resourceVersion` preconditions (409 on a stale one), server-side apply (merged into the
//! stored object; a no-op apply changes nothing and bumps nothing), JSON merge patch, the
//! `status` and `scale` subresources, delete with owner-reference garbage collection, watches
//! from a `resourceVersion` (410 Gone when it is too old), label selectors of the forms `k=v`, `k`
//! and `!k`, `metadata.generation` bumped on spec changes, and discovery's list of API groups
//! (`GET /apis`, with groups a test adds, such as a metrics adapter's).
//!
//! What it adds for tests: latency on every request, a share of writes refused with 409, a
//! count of writes by verb, and a minimal Deployment/HPA simulation (pods are Ready at once;
//! an autoscaler's `minReplicas` is applied as the HPA controller would).
//!
//! What it does not do: validation against schemas (the tests do that with kube-cel and
//! kubernetes-validate), field ownership beyond "apply merges", authentication.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How the stand-in misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Every request waits this long before it is answered (uniform between the two).
    pub latency_ms: (u64, u64),
    /// The share of writes (0.0–1.0) answered 409 Conflict without doing anything.
    pub conflict_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self { latency_ms: (0, 0), conflict_rate: 0.0 }
    }
}

/// Writes counted by verb, and requests in all.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub creates: AtomicU64,
    pub applies: AtomicU64,
    pub patches: AtomicU64,
    pub replaces: AtomicU64,
    pub deletes: AtomicU64,
    pub conflicts_injected: AtomicU64,
    /// Writes that changed an object.
    pub changes: AtomicU64,
    /// Every (verb, API group, resource[/subresource]) asked for, in RBAC's words.
    pub seen: Mutex<std::collections::BTreeSet<(String, String, String)>>,
}

/// One stored object's place: `group/version/plural` (core: `v1/plural`), namespace, name.
type Key = (String, String, String);

#[derive(Debug, Clone)]
struct WatchEvent {
    version: u64,
    collection: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

struct Inner {
    objects: BTreeMap<Key, Value>,
    version: u64,
    history: VecDeque<WatchEvent>,
}

const HISTORY: usize = 100_000;

#[derive(Clone)]
pub struct StandIn {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<WatchEvent>,
    faults: Arc<Mutex<Faults>>,
    pub counts: Arc<Counts>,
    simulate: bool,
    /// API groups discovery lists besides the ones of the resources above (say, an adapter's
    /// `custom.metrics.k8s.io`).
    extra_groups: Arc<Mutex<Vec<String>>>,
}

/// The resources the stand-in knows: collection path, kind, namespaced.
const KINDS: &[(&str, &str)] = &[
    ("apps/v1/deployments", "Deployment"),
    ("v1/configmaps", "ConfigMap"),
    ("v1/services", "Service"),
    ("v1/events", "Event"),
    ("autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("policy/v1/poddisruptionbudgets", "PodDisruptionBudget"),
    ("networking.k8s.io/v1/ingresses", "Ingress"),
    ("coordination.k8s.io/v1/leases", "Lease"),
    ("events.k8s.io/v1/events", "Event"),
    ("weatherwise.io/v1alpha1/couponcampaigns", "CouponCampaign"),
    ("weatherwise.io/v1alpha1/chatclusters", "ChatCluster"),
];

fn kind_of(collection: &str) -> Option<&'static str> {
    KINDS.iter().find(|(c, _)| *c == collection).map(|(_, k)| *k)
}

/// RBAC's words for a collection: its API group (`""` for core) and its plural.
fn group_and_plural(collection: &str) -> (&str, &str) {
    let (group_version, plural) = collection.rsplit_once('/').unwrap_or(("", ""));
    (group_version.rsplit_once('/').map_or("", |(g, _)| g), plural)
}

fn api_version_of(collection: &str) -> String {
    collection.rsplit_once('/').map(|(gv, _)| gv.to_owned()).unwrap_or_default()
}

/// A parsed request path.
#[derive(Debug)]
struct Target {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest): (String, &[&str]) = match parts.as_slice() {
        ["api", version, rest @ ..] => ((*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        rest => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return None,
    };
    Some(Target { collection: format!("{gv}/{plural}"), namespace, name, subresource })
}

fn status_error(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message.into(), "reason": reason, "code": code.as_u16(),
    });
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn ok_json(code: StatusCode, value: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// RFC 7386 JSON merge patch; server-side apply is read the same way here (fields given win,
/// fields not given stay).
/// What a delete did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// The object is gone.
    Gone,
    /// Finalizers hold it: marked for deletion, as it now stands.
    Held(Value),
    NotFound,
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v,k2=v2` equality selectors, `k` (the label exists) and `!k` (it does not).
fn matches_labels(object: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else { return true };
    let selector = percent_decode(selector);
    let labels = object.pointer("/metadata/labels");
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v),
        None => match term.strip_prefix('!') {
            Some(k) => labels.and_then(|l| l.get(k)).is_none(),
            None => labels.and_then(|l| l.get(term)).is_some(),
        },
    })
}

impl StandIn {
    pub fn new(faults: Faults, simulate: bool) -> Self {
        let (events, _) = broadcast::channel(65_536);
        Self {
            inner: Arc::new(Mutex::new(Inner { objects: BTreeMap::new(), version: 1, history: VecDeque::new() })),
            events,
            faults: Arc::new(Mutex::new(faults)),
            counts: Arc::new(Counts::default()),
            simulate,
            extra_groups: Arc::default(),
        }
    }

    /// Has discovery (`GET /apis`) list `group` too, as if an aggregated API (a metrics
    /// adapter) served it; `false` takes it away.
    pub fn serve_group(&self, group: &str, served: bool) {
        let mut groups = self.extra_groups.lock().unwrap_or_else(|e| e.into_inner());
        groups.retain(|g| g != group);
        if served {
            groups.push(group.to_owned());
        }
    }

    /// The API group list of discovery.
    fn api_groups(&self) -> Value {
        let mut groups: Vec<(String, String)> = KINDS
            .iter()
            .filter_map(|(collection, _)| {
                let gv = api_version_of(collection);
                gv.split_once('/').map(|(g, v)| (g.to_owned(), v.to_owned()))
            })
            .collect();
        for group in self.extra_groups.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            groups.push((group.clone(), "v1beta1".to_owned()));
        }
        groups.sort();
        groups.dedup();
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|(g, v)| {
                let version = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                json!({"name": g, "versions": [version.clone()], "preferredVersion": version})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Serves the API on `listen` until the process ends; returns the bound address.
    pub async fn serve(self, listen: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let router = Router::new().fallback(handle).with_state(self);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored object, as a test reads it.
    pub fn get(&self, collection: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(&(collection.to_owned(), namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Every change so far, oldest first, as watches saw it: (event type, collection, object).
    pub fn changes(&self) -> Vec<(&'static str, String, Value)> {
        self.lock().history.iter().map(|e| (e.kind, e.collection.clone(), e.object.clone())).collect()
    }

    /// Every stored object of a collection.
    pub fn list(&self, collection: &str) -> Vec<Value> {
        self.lock().objects.iter().filter(|((c, _, _), _)| c == collection).map(|(_, v)| v.clone()).collect()
    }

    /// Creates or replaces an object as a person with kubectl would (no faults, no latency).
    pub fn put(&self, collection: &str, object: Value) -> Value {
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_owned();
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
        let mut inner = self.lock();
        let existing = inner.objects.get(&(collection.to_owned(), namespace.clone(), name.clone())).cloned();
        let stored = match existing {
            Some(mut old) => {
                let status = old.get("status").cloned();
                merge(&mut old, &object);
                if collection.starts_with("weatherwise.io/") {
                    // The status subresource: the main resource never writes status.
                    match status {
                        Some(s) => old["status"] = s,
                        None => {
                            if let Some(map) = old.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
                self.store(&mut inner, collection, &namespace, &name, old, false)
            }
            None => self.store(&mut inner, collection, &namespace, &name, object, true),
        };
        stored.unwrap_or(Value::Null)
    }

    /// Deletes an object as a person would, collecting what it owns.
    /// Deletes an object as the API server does: one holding finalizers only gets its
    /// `deletionTimestamp` (and a new generation) and goes once they are all removed.
    pub fn remove(&self, collection: &str, namespace: &str, name: &str) -> Deleted {
        let mut inner = self.lock();
        let key = (collection.to_owned(), namespace.to_owned(), name.to_owned());
        let Some(mut object) = inner.objects.get(&key).cloned() else { return Deleted::NotFound };
        let finalized = object.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        if !finalized {
            self.delete_locked(&mut inner, collection, namespace, name);
            return Deleted::Gone;
        }
        if object.pointer("/metadata/deletionTimestamp").is_none() {
            inner.version += 1;
            let version = inner.version;
            let meta = &mut object["metadata"];
            meta["deletionTimestamp"] = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
            meta["generation"] = (meta["generation"].as_i64().unwrap_or(1) + 1).into();
            meta["resourceVersion"] = version.to_string().into();
            inner.objects.insert(key, object.clone());
            self.counts.changes.fetch_add(1, Ordering::Relaxed);
            let event = WatchEvent {
                version,
                collection: collection.to_owned(),
                namespace: namespace.to_owned(),
                kind: "MODIFIED",
                object: object.clone(),
            };
            self.record(&mut inner, event);
        }
        Deleted::Held(object)
    }

    /// An object being deleted goes once its last finalizer is removed.
    fn finish_deletion(&self, inner: &mut Inner, collection: &str, namespace: &str, name: &str) {
        let key = (collection.to_owned(), namespace.to_owned(), name.to_owned());
        let done = inner.objects.get(&key).is_some_and(|o| {
            o.pointer("/metadata/deletionTimestamp").is_some()
                && o.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty)
        });
        if done {
            self.delete_locked(inner, collection, namespace, name);
        }
    }

    /// Stores `object` if it differs from what is there; returns the stored object, or `None`
    /// when nothing changed.
    fn store(
        &self,
        inner: &mut Inner,
        collection: &str,
        namespace: &str,
        name: &str,
        mut object: Value,
        created: bool,
    ) -> Option<Value> {
        let key = (collection.to_owned(), namespace.to_owned(), name.to_owned());
        let old = inner.objects.get(&key).cloned();
        // Identity and bookkeeping fields are the server's.
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".to_owned(), api_version_of(collection).into());
            if let Some(kind) = kind_of(collection) {
                map.insert("kind".to_owned(), kind.into());
            }
        }
        let meta = object.get_mut("metadata").and_then(Value::as_object_mut)?;
        meta.insert("name".to_owned(), name.into());
        if !namespace.is_empty() {
            meta.insert("namespace".to_owned(), namespace.into());
        }
        let old_meta = old.as_ref().and_then(|o| o.get("metadata")).cloned().unwrap_or(Value::Null);
        for field in ["uid", "creationTimestamp", "generation", "deletionTimestamp"] {
            match old_meta.get(field) {
                Some(v) => {
                    meta.insert(field.to_owned(), v.clone());
                }
                None => {
                    meta.remove(field);
                }
            }
        }
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        if let Some(old) = &old {
            let mut old_cmp = old.clone();
            if let Some(m) = old_cmp.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            if old_cmp == object {
                return None;
            }
        }
        inner.version += 1;
        let version = inner.version;
        let spec_changed = old.as_ref().and_then(|o| o.get("spec")) != object.get("spec");
        let meta = object.get_mut("metadata").and_then(Value::as_object_mut)?;
        meta.insert("resourceVersion".to_owned(), version.to_string().into());
        if created || old.is_none() {
            meta.insert("uid".to_owned(), uuid::Uuid::new_v4().to_string().into());
            meta.insert(
                "creationTimestamp".to_owned(),
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string().into(),
            );
            meta.insert("generation".to_owned(), 1.into());
        } else if spec_changed {
            let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1) + 1;
            meta.insert("generation".to_owned(), generation.into());
        }
        inner.objects.insert(key, object.clone());
        self.counts.changes.fetch_add(1, Ordering::Relaxed);
        let event = WatchEvent {
            version,
            collection: collection.to_owned(),
            namespace: namespace.to_owned(),
            kind: if old.is_none() { "ADDED" } else { "MODIFIED" },
            object: object.clone(),
        };
        self.record(inner, event);
        if old.is_none() && self.orphaned(inner, &object) {
            // The garbage collector deletes a dependent whose every owner is gone (by uid): a
            // child written from a stale copy of a just-deleted owner does not survive it.
            self.delete_locked(inner, collection, namespace, name);
            return Some(object);
        }
        if self.simulate {
            self.simulate_workloads(inner, collection, namespace, name);
        }
        Some(object)
    }

    /// Whether `object` has owner references and none of its owners exists any more.
    fn orphaned(&self, inner: &Inner, object: &Value) -> bool {
        let Some(refs) = object.pointer("/metadata/ownerReferences").and_then(Value::as_array) else { return false };
        if refs.is_empty() {
            return false;
        }
        let owners: Vec<&Value> = refs.iter().filter_map(|r| r.get("uid")).collect();
        !inner.objects.values().any(|o| o.pointer("/metadata/uid").is_some_and(|uid| owners.contains(&uid)))
    }

    fn record(&self, inner: &mut Inner, event: WatchEvent) {
        inner.history.push_back(event.clone());
        if inner.history.len() > HISTORY {
            inner.history.pop_front();
        }
        let _ = self.events.send(event);
    }

    fn delete_locked(&self, inner: &mut Inner, collection: &str, namespace: &str, name: &str) -> bool {
        let key = (collection.to_owned(), namespace.to_owned(), name.to_owned());
        let Some(mut object) = inner.objects.remove(&key) else { return false };
        inner.version += 1;
        let version = inner.version;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".to_owned(), version.to_string().into());
        }
        let uid = object.pointer("/metadata/uid").cloned();
        self.record(
            inner,
            WatchEvent {
                version,
                collection: collection.to_owned(),
                namespace: namespace.to_owned(),
                kind: "DELETED",
                object,
            },
        );
        // Garbage collection: whatever this object owned goes too.
        if let Some(uid) = uid {
            let owned: Vec<Key> = inner
                .objects
                .iter()
                .filter(|(_, o)| {
                    o.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| refs.iter().any(|r| r.get("uid") == Some(&uid)))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for (c, n, m) in owned {
                self.delete_locked(inner, &c, &n, &m);
            }
        }
        true
    }

    /// The Deployment controller and the HPA, minimally: pods are Ready at once, and an
    /// autoscaler raises its target to `minReplicas` (and caps it at `maxReplicas`).
    fn simulate_workloads(&self, inner: &mut Inner, collection: &str, namespace: &str, name: &str) {
        let deployment_name = match collection {
            "apps/v1/deployments" => name.to_owned(),
            "autoscaling/v2/horizontalpodautoscalers" => {
                let key = (collection.to_owned(), namespace.to_owned(), name.to_owned());
                match inner
                    .objects
                    .get(&key)
                    .and_then(|h| h.pointer("/spec/scaleTargetRef/name"))
                    .and_then(Value::as_str)
                {
                    Some(target) => target.to_owned(),
                    None => return,
                }
            }
            _ => return,
        };
        let dkey = ("apps/v1/deployments".to_owned(), namespace.to_owned(), deployment_name.clone());
        let hkey =
            ("autoscaling/v2/horizontalpodautoscalers".to_owned(), namespace.to_owned(), deployment_name.clone());
        let Some(deployment) = inner.objects.get(&dkey).cloned() else { return };
        let mut replicas = deployment.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
        // An HPA does nothing while its target is at zero ("ScalingDisabled").
        if let Some(hpa) = inner.objects.get(&hkey).filter(|_| replicas > 0) {
            let min = hpa.pointer("/spec/minReplicas").and_then(Value::as_i64).unwrap_or(1);
            let max = hpa.pointer("/spec/maxReplicas").and_then(Value::as_i64).unwrap_or(min);
            replicas = replicas.clamp(min, max.max(min));
        }
        let mut next = deployment.clone();
        next["spec"]["replicas"] = replicas.into();
        next["status"] = json!({"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas, "observedGeneration": deployment.pointer("/metadata/generation").cloned().unwrap_or(Value::Null)});
        if next != deployment {
            // Stored directly, without re-entering the simulation.
            let mut copy = next;
            if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            inner.version += 1;
            let version = inner.version;
            copy["metadata"]["resourceVersion"] = version.to_string().into();
            inner.objects.insert(dkey, copy.clone());
            self.record(
                inner,
                WatchEvent {
                    version,
                    collection: "apps/v1/deployments".to_owned(),
                    namespace: namespace.to_owned(),
                    kind: "MODIFIED",
                    object: copy,
                },
            );
        }
    }
}

async fn handle(State(api): State<StandIn>, request: Request) -> Response {
    api.counts.requests.fetch_add(1, Ordering::Relaxed);
    if std::env::var_os("WW_STANDIN_TRACE").is_some() {
        eprintln!("stand-in: {} {}", request.method(), request.uri());
    }
    let (parts, body) = request.into_parts();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let watching = query_param(&query, "watch").is_some_and(|w| w == "true" || w == "1");
    let faults = *api.faults.lock().unwrap_or_else(|e| e.into_inner());
    if faults.latency_ms.1 > 0 {
        let ms = rand::thread_rng().gen_range(faults.latency_ms.0..=faults.latency_ms.1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if parts.uri.path().trim_end_matches('/') == "/apis" && parts.method == Method::GET {
        return ok_json(StatusCode::OK, &api.api_groups());
    }
    let Some(target) = parse_path(parts.uri.path()) else {
        return status_error(StatusCode::NOT_FOUND, "NotFound", format!("no such path {}", parts.uri.path()));
    };
    {
        let verb = match (&parts.method, &target.name) {
            (&Method::GET, None) if watching => "watch",
            (&Method::GET, None) => "list",
            (&Method::GET, Some(_)) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, _) => "delete",
            _ => "other",
        };
        let (group, plural) = group_and_plural(&target.collection);
        let resource = match &target.subresource {
            Some(sub) => format!("{plural}/{sub}"),
            None => plural.to_owned(),
        };
        api.counts.seen.lock().unwrap_or_else(|e| e.into_inner()).insert((verb.to_owned(), group.to_owned(), resource));
    }
    if kind_of(&target.collection).is_none() {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the stand-in does not serve {}", target.collection),
        );
    }
    let body = match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", "unreadable body"),
    };
    // A real server answers a create that finds the object with AlreadyExists, not Conflict.
    let is_write = matches!(parts.method, Method::PUT | Method::PATCH | Method::DELETE);
    if is_write && faults.conflict_rate > 0.0 && rand::thread_rng().gen_bool(faults.conflict_rate.min(1.0)) {
        api.counts.conflicts_injected.fetch_add(1, Ordering::Relaxed);
        return status_error(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        );
    }
    match (parts.method.clone(), &target.name) {
        (Method::GET, None) if watching => watch(api, target, &query).await,
        (Method::GET, None) => list(&api, &target, &query),
        (Method::GET, Some(_)) => get(&api, &target),
        (Method::POST, None) => create(&api, &target, &body),
        (Method::PUT, Some(_)) => replace(&api, &target, &body),
        (Method::PATCH, Some(_)) => patch(&api, &target, &parts.headers, &body, &query),
        (Method::DELETE, Some(name)) => {
            api.counts.deletes.fetch_add(1, Ordering::Relaxed);
            let ns = target.namespace.clone().unwrap_or_default();
            match api.remove(&target.collection, &ns, name) {
                Deleted::Gone => {
                    ok_json(StatusCode::OK, &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
                }
                // Held by finalizers: the object as it now stands.
                Deleted::Held(object) => ok_json(StatusCode::OK, &object),
                Deleted::NotFound => status_error(StatusCode::NOT_FOUND, "NotFound", format!("{name} not found")),
            }
        }
        _ => status_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "not served by the stand-in"),
    }
}

fn get(api: &StandIn, target: &Target) -> Response {
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    match api.get(&target.collection, &ns, &name) {
        Some(object) if target.subresource.as_deref() == Some("scale") => ok_json(StatusCode::OK, &scale_of(&object)),
        Some(object) => ok_json(StatusCode::OK, &object),
        None => status_error(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", target.collection)),
    }
}

fn scale_of(object: &Value) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": object["metadata"].clone(),
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0))},
    })
}

fn list(api: &StandIn, target: &Target, query: &str) -> Response {
    let selector = query_param(query, "labelSelector");
    let inner = api.lock();
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((c, n, _), o)| {
            *c == target.collection && target.namespace.as_ref().is_none_or(|ns| ns == n) && matches_labels(o, selector)
        })
        .map(|(_, o)| o.clone())
        .collect();
    let kind = kind_of(&target.collection).unwrap_or("Object");
    ok_json(
        StatusCode::OK,
        &json!({
            "apiVersion": api_version_of(&target.collection),
            "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": inner.version.to_string()},
            "items": items,
        }),
    )
}

async fn watch(api: StandIn, target: Target, query: &str) -> Response {
    let selector = query_param(query, "labelSelector").map(str::to_owned);
    let from: u64 = query_param(query, "resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let timeout = query_param(query, "timeoutSeconds").and_then(|v| v.parse().ok()).unwrap_or(290u64);
    let mut receiver = api.events.subscribe();
    let (backlog, gone) = {
        let inner = api.lock();
        let oldest = inner.history.front().map_or(inner.version + 1, |e| e.version);
        let gone = from != 0 && from + 1 < oldest && inner.history.len() >= HISTORY;
        let backlog: Vec<WatchEvent> = inner.history.iter().filter(|e| e.version > from).cloned().collect();
        (backlog, gone)
    };
    let wanted = move |e: &WatchEvent| {
        e.collection == target.collection
            && target.namespace.as_ref().is_none_or(|ns| *ns == e.namespace)
            && matches_labels(&e.object, selector.as_deref())
    };
    let line = |e: &WatchEvent| Bytes::from(format!("{}\n", json!({"type": e.kind, "object": e.object})));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(1024);
    tokio::spawn(async move {
        if gone {
            let expired = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410, "message": "too old resource version"}});
            let _ = tx.send(Ok(Bytes::from(format!("{expired}\n")))).await;
            return;
        }
        let mut last = from;
        for e in backlog.iter().filter(|e| wanted(e)) {
            last = last.max(e.version);
            if tx.send(Ok(line(e))).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                event = receiver.recv() => match event {
                    Ok(e) if e.version > last && wanted(&e) => {
                        last = e.version;
                        if tx.send(Ok(line(&e))).await.is_err() { return; }
                    }
                    Ok(_) => {}
                    // Fell behind: end the watch; the client lists again.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = tokio_stream_from(rx);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn parse_body(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).or_else(|_| serde_yaml::from_slice(body)).map_err(|e| format!("unreadable body: {e}"))
}

fn create(api: &StandIn, target: &Target, body: &Bytes) -> Response {
    api.counts.creates.fetch_add(1, Ordering::Relaxed);
    let object = match parse_body(body) {
        Ok(v) => v,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    if name.is_empty() {
        return status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "metadata.name is required");
    }
    let mut inner = api.lock();
    if inner.objects.contains_key(&(target.collection.clone(), ns.clone(), name.clone())) {
        return status_error(StatusCode::CONFLICT, "AlreadyExists", format!("\"{name}\" already exists"));
    }
    match api.store(&mut inner, &target.collection, &ns, &name, object, true) {
        Some(stored) => ok_json(StatusCode::CREATED, &stored),
        None => status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "no metadata"),
    }
}

fn replace(api: &StandIn, target: &Target, body: &Bytes) -> Response {
    api.counts.replaces.fetch_add(1, Ordering::Relaxed);
    let object = match parse_body(body) {
        Ok(v) => v,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let mut inner = api.lock();
    let key = (target.collection.clone(), ns.clone(), name.clone());
    let Some(current) = inner.objects.get(&key).cloned() else {
        return status_error(StatusCode::NOT_FOUND, "NotFound", format!("\"{name}\" not found"));
    };
    let expected = object.pointer("/metadata/resourceVersion").and_then(Value::as_str);
    if expected.is_some_and(|v| Some(v) != current.pointer("/metadata/resourceVersion").and_then(Value::as_str)) {
        return status_error(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        );
    }
    let stored = api.store(&mut inner, &target.collection, &ns, &name, object, false).unwrap_or(current);
    ok_json(StatusCode::OK, &stored)
}

fn patch(api: &StandIn, target: &Target, headers: &HeaderMap, body: &Bytes, _query: &str) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let is_apply = content_type.starts_with("application/apply-patch");
    if is_apply {
        api.counts.applies.fetch_add(1, Ordering::Relaxed);
    } else {
        api.counts.patches.fetch_add(1, Ordering::Relaxed);
    }
    let patch = match parse_body(body) {
        Ok(v) => v,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let mut inner = api.lock();
    let key = (target.collection.clone(), ns.clone(), name.clone());
    let existing = inner.objects.get(&key).cloned();
    let subresource = target.subresource.as_deref();
    // A merge patch may carry a `resourceVersion` precondition.
    let expected = patch.pointer("/metadata/resourceVersion").and_then(Value::as_str);
    if let (Some(expected), Some(current), false) = (expected, &existing, is_apply)
        && current.pointer("/metadata/resourceVersion").and_then(Value::as_str) != Some(expected)
    {
        return status_error(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        );
    }
    let next = match (existing.clone(), subresource) {
        (None, None) if is_apply => patch.clone(),
        (None, _) => return status_error(StatusCode::NOT_FOUND, "NotFound", format!("\"{name}\" not found")),
        (Some(mut current), Some("status")) => {
            match patch.get("status") {
                // An apply states the whole status it manages.
                Some(status) if is_apply => current["status"] = status.clone(),
                Some(status) => merge(&mut current["status"], status),
                None => {}
            }
            current
        }
        (Some(mut current), Some("scale")) => {
            if let Some(replicas) = patch.pointer("/spec/replicas") {
                current["spec"]["replicas"] = replicas.clone();
            }
            current
        }
        (Some(_), Some(other)) => {
            return status_error(StatusCode::NOT_FOUND, "NotFound", format!("no subresource {other}"));
        }
        (Some(mut current), None) => {
            let status = current.get("status").cloned();
            let mut patch = patch.clone();
            if let Some(map) = patch.as_object_mut() {
                map.remove("status");
            }
            merge(&mut current, &patch);
            if let Some(status) = status {
                current["status"] = status;
            }
            current
        }
    };
    let created = existing.is_none();
    if created {
        // An apply that creates is authorized as a create too.
        let (group, plural) = group_and_plural(&target.collection);
        api.counts.seen.lock().unwrap_or_else(|e| e.into_inner()).insert((
            "create".to_owned(),
            group.to_owned(),
            plural.to_owned(),
        ));
    }
    let stored = api.store(&mut inner, &target.collection, &ns, &name, next, created);
    api.finish_deletion(&mut inner, &target.collection, &ns, &name);
    let object = stored.or(existing).unwrap_or(Value::Null);
    if subresource == Some("scale") {
        return ok_json(StatusCode::OK, &scale_of(&object));
    }
    ok_json(if created { StatusCode::CREATED } else { StatusCode::OK }, &object)
}
