//! The ChatCluster controller: watch → read (untyped, so a malformed object is reported in its own
//! status and never stops the watch) → validate → the topic created or grown → the autoscaler's
//! metric chosen → children applied (only what differs from what the watches last saw) → status
//! written (only when it changes) → requeue to look at the topic and discovery again.
//!
//! A cluster's pods are created only once its topic exists (the roles would otherwise create it
//! with the platform's default partition count). Deleting a cluster deletes nothing on the broker:
//! its children go with it (owner references, the API server's garbage collector) and its topic
//! stays, with every message the persister may not have written yet (0011).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio::time::Instant;

use super::autoscaling::{self, Discovery};
use super::children::{self, CLUSTER_LABEL, ChatChildren, Inputs, Role, child_name, ingress_name};
use super::resource::{API_VERSION, AutoscaleOn, ChatCluster, ChatClusterStatus, KIND, topic_name};
use super::status::{self, Pods};
use super::topic::{self, Outcome, TopicAdmin};
use crate::apply::{apply_one, count_write, delete, retry_conflicts};
use crate::children::{FIELD_MANAGER, MANAGED_BY};
use crate::config::{Scope, WorkloadConfig};
use crate::controller::{Error, Writes, watch_children};
use crate::http::Readiness;

/// How often a cluster's topic and the cluster's discovery are looked at again when nothing
/// else happens (a topic changed by hand, an adapter installed).
pub const RECHECK: Duration = Duration::from_secs(60);
/// How soon a topic that is not as asked (broker down, grow refused) is tried again.
pub const TOPIC_RETRY: Duration = Duration::from_secs(30);
/// Clusters reconciled at once (there are few; each holds an API connection).
pub const RECONCILE_CONCURRENCY: u16 = 8;

/// What the watches last saw of the clusters' children.
#[derive(Clone)]
pub struct ChatStores {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub ingresses: Store<Ingress>,
}

/// Everything the ChatCluster controller works with.
pub struct ChatContext {
    pub client: Client,
    pub config: WorkloadConfig,
    /// The deployment's Kafka topic prefix (`WW_KAFKA_PREFIX` of the operator and the pods).
    pub kafka_prefix: String,
    /// What gateways scale on unless their cluster says (`--chat-autoscale-on`).
    pub autoscale_on: AutoscaleOn,
    pub admin: Arc<dyn TopicAdmin>,
    pub discovery: Discovery,
    pub stores: ChatStores,
    pub recorder: Option<Recorder>,
    pub writes: Writes,
    /// Reconciles run, successful or not.
    pub reconciles: AtomicU64,
    /// The status this replica last wrote per cluster (the watch may lag behind the write).
    last_status: Mutex<HashMap<String, ChatClusterStatus>>,
    /// The topic's last outcome per cluster, for the partitions asked, and when.
    topics: Mutex<HashMap<String, (u32, Outcome, Instant)>>,
    failures: Mutex<HashMap<String, u32>>,
    /// Every child watch has listed once; before that an empty store would read as "missing".
    pub synced: AtomicBool,
    /// The clusters as the controller's watch sees them (to refuse a name or prefix taken).
    pub clusters: OnceLock<Store<DynamicObject>>,
}

impl ChatContext {
    pub fn new(
        client: Client,
        config: WorkloadConfig,
        kafka_prefix: String,
        autoscale_on: AutoscaleOn,
        admin: Arc<dyn TopicAdmin>,
        stores: ChatStores,
        recorder: Option<Recorder>,
    ) -> Self {
        Self {
            client,
            config,
            kafka_prefix,
            autoscale_on,
            admin,
            discovery: Discovery::default(),
            stores,
            recorder,
            writes: Writes::default(),
            reconciles: AtomicU64::new(0),
            last_status: Mutex::default(),
            topics: Mutex::default(),
            failures: Mutex::default(),
            synced: AtomicBool::new(false),
            clusters: OnceLock::new(),
        }
    }
}

pub fn cluster_resource() -> ApiResource {
    ApiResource::erase::<ChatCluster>(&())
}

fn key_of(object: &DynamicObject) -> String {
    format!("{}/{}", object.metadata.namespace.as_deref().unwrap_or(""), object.metadata.name.as_deref().unwrap_or(""))
}

fn status_key(object: &DynamicObject) -> String {
    format!("{}/{}", key_of(object), object.metadata.uid.as_deref().unwrap_or(""))
}

/// Reconciles one cluster.
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<ChatContext>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    ctx.reconciles.fetch_add(1, Ordering::Relaxed);
    let result = reconcile_cluster(&object, &ctx).await;
    metrics::histogram!("ww_operator_chat_reconcile_duration_seconds").record(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => {
            metrics::counter!("ww_operator_chat_reconciles_total", "result" => "ok").increment(1);
            ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&key_of(&object));
        }
        Err(e) => {
            metrics::counter!("ww_operator_chat_reconciles_total", "result" => "error").increment(1);
            metrics::counter!("ww_operator_chat_reconcile_failures_total", "reason" => e.reason()).increment(1);
        }
    }
    result
}

/// Transient errors back off per cluster: 0.5 s, 1 s, 2 s … at most a minute.
pub fn error_policy(object: Arc<DynamicObject>, error: &Error, ctx: Arc<ChatContext>) -> Action {
    let key = key_of(&object);
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let n = failures.entry(key.clone()).or_insert(0);
    *n = n.saturating_add(1);
    let delay = Duration::from_millis(500).saturating_mul(1 << (*n - 1).min(7)).min(Duration::from_secs(60));
    tracing::warn!(chat_cluster = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Another running cluster that came first (earlier creation, then namespace and name) and has
/// this one's name in another namespace (the name is the topic's, the SQL epoch's and the Redis
/// keys': one per platform) or its room prefix (one route per prefix on the public host).
fn taken(ctx: &ChatContext, object: &DynamicObject, prefix: &str) -> Option<String> {
    let store = ctx.clusters.get()?;
    let order = |o: &DynamicObject| {
        (o.metadata.creation_timestamp.as_ref().map(|t| t.0), o.metadata.namespace.clone(), o.metadata.name.clone())
    };
    let me = order(object);
    let prefix_of =
        |o: &DynamicObject| o.data.pointer("/spec/roomPrefix").and_then(|p| p.as_str()).unwrap_or("").to_owned();
    store
        .state()
        .iter()
        .filter(|o| o.metadata.uid != object.metadata.uid && o.metadata.deletion_timestamp.is_none())
        .filter(|o| !is_invalid(o))
        .filter(|o| order(o) < me)
        .find_map(|o| {
            let other = format!(
                "{}/{}",
                o.metadata.namespace.as_deref().unwrap_or(""),
                o.metadata.name.as_deref().unwrap_or("")
            );
            if o.metadata.name == object.metadata.name && o.metadata.namespace != object.metadata.namespace {
                Some(format!(
                    "metadata.name: `{}` is already the chat cluster {other}; a cluster's name names its topic, \
                     epoch and cache, so names are unique across namespaces",
                    object.name_any()
                ))
            } else if prefix_of(o) == prefix {
                Some(format!(
                    "spec.roomPrefix: `{prefix}` is already served by the chat cluster {other}; each prefix has \
                     one route on the public host"
                ))
            } else {
                None
            }
        })
}

fn is_invalid(object: &DynamicObject) -> bool {
    object
        .data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "InvalidSpec" && c["status"] == "True"))
}

async fn reconcile_cluster(object: &DynamicObject, ctx: &ChatContext) -> Result<Action, Error> {
    let (Some(namespace), Some(name)) = (object.metadata.namespace.clone(), object.metadata.name.clone()) else {
        return Err(Error::Unnamed);
    };
    if object.metadata.deletion_timestamp.is_some() {
        // The children go with it (owner references); the topic stays (0011).
        forget(ctx, object);
        return Ok(Action::await_change());
    }
    if !ctx.synced.load(Ordering::Acquire) {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let now = chrono::Utc::now();
    let key = status_key(object);
    let watched: Option<ChatClusterStatus> =
        object.data.get("status").and_then(|s| serde_json::from_value(s.clone()).ok());
    let cached = ctx.last_status.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    let old_status = cached.or(watched);
    let generation = object.metadata.generation;

    let refuse = |problem: String| status::invalid(old_status.as_ref(), generation, &problem, now);
    let resource: ChatCluster = match serde_json::from_value(serde_json::to_value(object)?) {
        Ok(resource) => resource,
        Err(e) => {
            let new = refuse(format!("the resource cannot be read: {e}"));
            write_status(ctx, object, old_status.as_ref(), &new).await?;
            return Ok(Action::await_change());
        }
    };
    let mut problems = resource.spec.problems(&name);
    if let Some(image) = &resource.spec.image
        && !ctx.config.image_allowed(image)
    {
        problems.push(format!(
            "spec.image: `{image}` is not among the images the operator allows (its --allowed-images); the chat \
             pods receive the platform's secrets"
        ));
    }
    let collision = taken(ctx, object, &resource.spec.room_prefix);
    let collided = collision.is_some();
    problems.extend(collision);
    if !problems.is_empty() {
        if collided {
            // The route belongs to the other cluster.
            let route = ingress_name(&name);
            if ctx.stores.ingresses.get(&ObjectRef::new(&route).within(&namespace)).is_some() {
                delete::<Ingress>(&ctx.client, &ctx.writes, &namespace, &route).await?;
            }
        }
        let new = refuse(problems.join("; "));
        write_status(ctx, object, old_status.as_ref(), &new).await?;
        // A cluster that took the name or prefix may go away: looked at again in a minute.
        return Ok(if collided { Action::requeue(RECHECK) } else { Action::await_change() });
    }

    let topic = topic_name(&name, &ctx.kafka_prefix);
    let outcome = topic_outcome(ctx, &key, &topic, resource.spec.partitions).await;
    if let (Some(recorder), Some(old)) = (&ctx.recorder, &old_status) {
        let old_reason = old.conditions.iter().find(|c| c.type_ == "TopicReady").map(|c| c.reason.as_str());
        if old_reason != Some(outcome.reason) {
            publish(recorder, object, &outcome).await;
        }
    }
    let served = ctx.discovery.custom_metrics_served(&ctx.client).await;
    let choice = autoscaling::choose(resource.spec.gateway.autoscale_on, ctx.autoscale_on, served);
    let inputs = Inputs { config: &ctx.config, kafka_prefix: &ctx.kafka_prefix, metric: choice.metric };
    let Some(built) = children::build(&resource, &inputs) else { return Err(Error::Unnamed) };
    if some_child_missing(ctx, &namespace, &built) && !still_there(ctx, object, &namespace, &name).await? {
        forget(ctx, object);
        return Ok(Action::await_change());
    }
    apply_children(ctx, &namespace, &built, outcome.exists).await?;

    let deployment =
        |role: Role| ctx.stores.deployments.get(&ObjectRef::new(&child_name(&name, role)).within(&namespace));
    let ready = |role: Role| {
        deployment(role)
            .and_then(|d| d.status.as_ref().and_then(|s| s.ready_replicas))
            .map_or(0, |r| u32::try_from(r).unwrap_or(0))
    };
    let hpa = ctx.stores.hpas.get(&ObjectRef::new(&child_name(&name, Role::Gateway)).within(&namespace));
    let seen = status::Seen {
        old: old_status.as_ref(),
        generation,
        topic_name: topic,
        topic: &outcome,
        gateways: Pods { ready: ready(Role::Gateway), wanted: built.gateway_floor },
        persisters: Pods { ready: ready(Role::Persister), wanted: resource.spec.persister.replicas },
        api: Pods { ready: ready(Role::Api), wanted: resource.spec.api.replicas },
        autoscaling: &choice,
        autoscaler_trouble: hpa.as_deref().and_then(autoscaling::trouble),
        connections: hpa.as_deref().and_then(autoscaling::connections),
        endpoint: children::endpoint(&ctx.config, &resource.spec.room_prefix),
    };
    let new = status::desired(seen, now);
    write_status(ctx, object, old_status.as_ref(), &new).await?;
    Ok(Action::requeue(if outcome.ready { RECHECK } else { TOPIC_RETRY }))
}

/// The topic as last ensured for this many partitions, or ensured now when the count asked
/// changed, the topic was missing, or the last look is older than [`RECHECK`] ([`TOPIC_RETRY`]
/// when it was not as asked).
async fn topic_outcome(ctx: &ChatContext, key: &str, topic: &str, asked: u32) -> Outcome {
    let cached = ctx.topics.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
    if let Some((for_count, outcome, at)) = cached {
        // A missing topic holds the pods back: looked for on every reconcile. One not as asked
        // (a grow refused) runs meanwhile: tried again after a while.
        let wait = if outcome.ready { RECHECK } else { TOPIC_RETRY };
        if for_count == asked && outcome.exists && at.elapsed() < wait {
            return outcome;
        }
    }
    let outcome = topic::ensure(ctx.admin.as_ref(), topic, asked).await;
    if !outcome.ready {
        tracing::warn!(topic, reason = outcome.reason, message = %outcome.message, "the chat topic is not as asked");
    }
    ctx.topics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_owned(), (asked, outcome.clone(), Instant::now()));
    outcome
}

/// Whether a child the cluster should own is missing from the watches' stores (about to be
/// created).
fn some_child_missing(ctx: &ChatContext, namespace: &str, built: &ChatChildren) -> bool {
    fn gone<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>, namespace: &str, object: &K) -> bool {
        store.get(&ObjectRef::new(&object.name_any()).within(namespace)).is_none()
    }
    let s = &ctx.stores;
    gone(&s.services, namespace, &built.gateway_service)
        || gone(&s.services, namespace, &built.api_service)
        || gone(&s.pdbs, namespace, &built.gateway_pdb)
        || gone(&s.hpas, namespace, &built.gateway_hpa)
        || [&built.persister, &built.api, &built.gateway].into_iter().any(|d| gone(&s.deployments, namespace, d))
        || built.ingress.as_ref().is_some_and(|i| gone(&s.ingresses, namespace, i))
}

/// Whether the cluster still exists as the watch saw it (same uid, not being deleted), asked of
/// the API server before a child is created. The watch of clusters can lag behind the watches of
/// the children: when the cluster is deleted, the garbage collector's removal of a child may
/// arrive first and ask for a reconcile of a cluster that is gone, whose recreated gateway would
/// start pods until collected again. Costs one read only when something is to be created.
async fn still_there(ctx: &ChatContext, object: &DynamicObject, namespace: &str, name: &str) -> Result<bool, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &cluster_resource());
    let live = api.get_opt(name).await?;
    Ok(live.is_some_and(|l| l.metadata.uid == object.metadata.uid && l.metadata.deletion_timestamp.is_none()))
}

/// Applies the children. Without the topic, pods are not created yet (Deployments that exist
/// are kept: the topic may be only briefly out of reach).
async fn apply_children(
    ctx: &ChatContext,
    namespace: &str,
    built: &ChatChildren,
    topic_exists: bool,
) -> Result<(), Error> {
    let (client, writes, stores) = (&ctx.client, &ctx.writes, &ctx.stores);
    apply_one(client, writes, &stores.services, namespace, &built.gateway_service).await?;
    apply_one(client, writes, &stores.services, namespace, &built.api_service).await?;
    apply_one(client, writes, &stores.pdbs, namespace, &built.gateway_pdb).await?;
    let existing = |d: &Deployment| {
        let name = d.metadata.name.clone().unwrap_or_default();
        stores.deployments.get(&ObjectRef::new(&name).within(namespace))
    };
    for deployment in [&built.persister, &built.api] {
        if topic_exists || existing(deployment).is_some() {
            apply_one(client, writes, &stores.deployments, namespace, deployment).await?;
        }
    }
    let gateway = existing(&built.gateway);
    if topic_exists || gateway.is_some() {
        let name = built.gateway.metadata.name.clone().unwrap_or_default();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let floor = i32::try_from(built.gateway_floor).unwrap_or(i32::MAX);
        let current = match &gateway {
            // Created by apply like every child, so a field later dropped from the spec goes
            // (an object created by POST keeps its fields under an Update entry that later
            // applies never remove). `replicas` is never among the applied fields — the
            // autoscaler owns it; the new Deployment (one replica by default) is raised to its
            // floor just below.
            None => {
                apply_one(client, writes, &stores.deployments, namespace, &built.gateway).await?;
                None
            }
            Some(d) => {
                apply_one(client, writes, &stores.deployments, namespace, &built.gateway).await?;
                d.spec.as_ref().and_then(|s| s.replicas)
            }
        };
        apply_one(client, writes, &stores.hpas, namespace, &built.gateway_hpa).await?;
        // An HPA never scales a Deployment up from zero: below the floor, the operator raises it.
        if current.is_none_or(|c| c < floor) {
            let patch = serde_json::json!({"spec": {"replicas": floor}});
            let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
            let patch = Patch::Merge(&patch);
            retry_conflicts(|| deployments.patch_scale(&name, &params, &patch)).await?;
            count_write(writes, "Deployment", "scale");
        }
    }
    match &built.ingress {
        Some(ingress) => apply_one(client, writes, &stores.ingresses, namespace, ingress).await?,
        None => {
            let name =
                built.gateway.metadata.labels.as_ref().and_then(|l| l.get(CLUSTER_LABEL)).map(|c| ingress_name(c));
            if let Some(name) = name
                && stores.ingresses.get(&ObjectRef::new(&name).within(namespace)).is_some()
            {
                delete::<Ingress>(client, writes, namespace, &name).await?;
            }
        }
    }
    Ok(())
}

/// Writes `new` when it differs from `current` (what this replica last wrote, or the watched one).
async fn write_status(
    ctx: &ChatContext,
    object: &DynamicObject,
    current: Option<&ChatClusterStatus>,
    new: &ChatClusterStatus,
) -> Result<(), Error> {
    if current == Some(new) {
        return Ok(());
    }
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        object.metadata.namespace.as_deref().unwrap_or_default(),
        &cluster_resource(),
    );
    let body = serde_json::json!({"apiVersion": API_VERSION, "kind": KIND, "status": new});
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = object.name_any();
    let patch = Patch::Apply(&body);
    retry_conflicts(|| api.patch_status(&name, &params, &patch)).await?;
    ctx.writes.status.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("ww_operator_status_writes_total").increment(1);
    ctx.last_status.lock().unwrap_or_else(|e| e.into_inner()).insert(status_key(object), new.clone());
    Ok(())
}

/// An Event on the cluster when its topic's state changes (created, grown, refused).
async fn publish(recorder: &Recorder, object: &DynamicObject, outcome: &Outcome) {
    let event = Event {
        type_: if outcome.ready { EventType::Normal } else { EventType::Warning },
        reason: format!("Topic{}", outcome.reason),
        note: Some(outcome.message.clone()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &object.object_ref(&cluster_resource())).await {
        tracing::warn!(error = %e, "could not publish an event");
    }
}

/// Drops what this replica kept about a deleted cluster.
fn forget(ctx: &ChatContext, object: &DynamicObject) {
    let key = status_key(object);
    ctx.last_status.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
    ctx.topics.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
    ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&key_of(object));
}

/// The watches on the clusters' children (only objects the operator manages for a cluster), with
/// their stores; the streams trigger reconciles of the owning cluster.
pub struct ChatWatches {
    pub stores: ChatStores,
    /// Where the clusters and their children are watched.
    scope: Scope,
    controller: Box<dyn FnOnce(Controller<DynamicObject>) -> Controller<DynamicObject> + Send>,
}

impl ChatWatches {
    /// Watches the clusters' children in `scope`.
    pub fn new(client: &Client, scope: &Scope) -> Self {
        let config =
            watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY},{CLUSTER_LABEL}"));
        let (deployments, d) = watch_children::<Deployment>(client, scope, &config);
        let (services, s) = watch_children::<Service>(client, scope, &config);
        let (hpas, h) = watch_children::<HorizontalPodAutoscaler>(client, scope, &config);
        let (pdbs, p) = watch_children::<PodDisruptionBudget>(client, scope, &config);
        let (ingresses, i) = watch_children::<Ingress>(client, scope, &config);
        Self {
            stores: ChatStores { deployments, services, hpas, pdbs, ingresses },
            scope: scope.clone(),
            controller: Box::new(move |controller| {
                controller.owns_stream(d).owns_stream(s).owns_stream(h).owns_stream(p).owns_stream(i)
            }),
        }
    }

    /// Resolves once every watch has listed its objects once.
    pub async fn synced(stores: &ChatStores) {
        let _ = futures::join!(
            stores.deployments.wait_until_ready(),
            stores.services.wait_until_ready(),
            stores.hpas.wait_until_ready(),
            stores.pdbs.wait_until_ready(),
            stores.ingresses.wait_until_ready(),
        );
    }
}

/// Runs the controller until `shutdown` resolves; `ready` turns true once every watch has listed
/// once. `reconcile_on` names clusters to look at again now.
pub async fn run(
    ctx: Arc<ChatContext>,
    watches: ChatWatches,
    reconcile_on: impl Stream<Item = ObjectRef<DynamicObject>> + Send + 'static,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let ar = cluster_resource();
    let clusters = watches.scope.api_with(&ctx.client, &ar);
    let stores = ctx.stores.clone();
    let controller = Controller::new_with(clusters, watcher::Config::default(), ar)
        .with_config(kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY));
    let controller = (watches.controller)(controller);
    let _ = ctx.clusters.set(controller.store());
    let synced_ctx = ctx.clone();
    tokio::spawn(async move {
        ChatWatches::synced(&stores).await;
        synced_ctx.synced.store(true, Ordering::Release);
        ready.set(true);
        tracing::info!("chat watches synced; reconciling");
    });
    controller
        .reconcile_on(reconcile_on)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "chat controller event");
            }
        })
        .await;
}
