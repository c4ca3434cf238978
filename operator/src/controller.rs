//! The CouponCampaign controller: watch → plan → children applied (only what differs from what
//! the watches last saw) → status patched (only when it changes, counts at most every few
//! seconds) → requeue at the plan's next change, not by polling.
//!
//! Campaigns are watched as untyped objects and read one at a time, so one malformed object
//! (say, stored before a schema change) is reported in its own status and never stops the watch
//! for the others. Invalid specs wait for a change; API errors back off per campaign.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campaign::plan::{Observed, Plan, Scale};
use campaign::{Campaign, CouponCampaign, CouponCampaignStatus, ResourcePhase};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::announce::{self, Announcer};
use crate::children::{self, Children, FIELD_MANAGER, MANAGED_BY, Running, child_name};
use crate::config::{Scope, WorkloadConfig};
use crate::http::Readiness;
use crate::status;

/// Counts in the status are written at most this often while a campaign is open.
pub const STATUS_COUNTS_INTERVAL: Duration = Duration::from_secs(5);
/// How often an open campaign is looked at again when nothing else happens (to notice issuers
/// going silent).
const OPEN_RECHECK: Duration = Duration::from_secs(5);

/// Campaigns reconciled at once.
pub const RECONCILE_CONCURRENCY: u16 = 32;

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot serialize an object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the campaign has no namespace, name or uid")]
    Unnamed,
    #[error("event bus: {0}")]
    Bus(#[from] platform::events::BusError),
}

impl Error {
    /// The `reason` label of the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Self::Kube(kube::Error::Api(e)) if e.code == 404 => "not-found",
            Self::Kube(kube::Error::Api(e)) if e.code >= 500 => "api-server",
            Self::Kube(kube::Error::Api(_)) => "api-refused",
            Self::Kube(_) => "api-unreachable",
            Self::Json(_) => "serialize",
            Self::Unnamed => "unnamed",
            Self::Bus(_) => "event-bus",
        }
    }
}

/// What the watches last saw of the children.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<Deployment>,
    pub config_maps: Store<ConfigMap>,
    pub services: Store<Service>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub ingresses: Store<Ingress>,
}

/// API writes the controller made, by kind; the benchmark reads them.
#[derive(Debug, Default)]
pub struct Writes {
    pub children: AtomicU64,
    pub status: AtomicU64,
}

pub struct Context {
    pub client: Client,
    pub config: WorkloadConfig,
    pub clock: Clock,
    pub stores: Stores,
    pub counters: crate::counters::Counters,
    pub recorder: Option<Recorder>,
    pub writes: Writes,
    /// Reconciles run, successful or not.
    pub reconciles: AtomicU64,
    /// The status this replica last wrote for each campaign (by namespace, name and uid) and
    /// when: to space out count-only updates, and because the watch may lag behind the write.
    last_status: Mutex<HashMap<String, (CouponCampaignStatus, Instant)>>,
    /// Consecutive failures per campaign, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// When each campaign's route was last removed, so its issuers stop only after the ingress
    /// had time to stop sending to them.
    route_removed: Mutex<HashMap<String, Instant>>,
    /// Every child watch has listed once; before that an empty store would read as "missing".
    pub synced: std::sync::atomic::AtomicBool,
    /// The campaigns as the controller's watch sees them (to refuse a name another namespace
    /// already routes).
    pub campaigns: std::sync::OnceLock<Store<DynamicObject>>,
    /// How long after a campaign's route is removed its last issuers keep running.
    pub route_drain: Duration,
    /// When each deleted campaign began winding down.
    winding: Mutex<HashMap<String, Instant>>,
    /// Campaigns (by uid) whose removal this replica announced: a reconcile still working from
    /// a copy with the finalizer (a lagging watch) must not announce it again.
    removals_announced: Mutex<HashMap<String, Instant>>,
    /// Announces definitions and removals on the event bus (and holds deleted campaigns with a
    /// finalizer until their removal is announced); `None` runs without the bus (tests, bench).
    pub announcer: Option<Arc<Announcer>>,
}

/// How long after a campaign's route is removed its last issuers keep running.
pub const ROUTE_DRAIN: Duration = Duration::from_secs(10);

impl Context {
    /// The same context with another route drain (tests use a short one).
    pub fn with_route_drain(mut self, drain: Duration) -> Self {
        self.route_drain = drain;
        self
    }

    /// The same context announcing campaigns on the bus.
    pub fn with_announcer(mut self, announcer: Arc<Announcer>) -> Self {
        self.announcer = Some(announcer);
        self
    }

    pub fn new(
        client: Client,
        config: WorkloadConfig,
        clock: Clock,
        stores: Stores,
        counters: crate::counters::Counters,
        recorder: Option<Recorder>,
    ) -> Self {
        Self {
            client,
            config,
            clock,
            stores,
            counters,
            recorder,
            writes: Writes::default(),
            reconciles: AtomicU64::new(0),
            last_status: Mutex::default(),
            failures: Mutex::default(),
            route_removed: Mutex::default(),
            synced: std::sync::atomic::AtomicBool::new(false),
            campaigns: std::sync::OnceLock::new(),
            route_drain: ROUTE_DRAIN,
            winding: Mutex::default(),
            removals_announced: Mutex::default(),
            announcer: None,
        }
    }
}

fn campaign_resource() -> ApiResource {
    ApiResource::erase::<CouponCampaign>(&())
}

/// Reconciles one campaign.
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    ctx.reconciles.fetch_add(1, Ordering::Relaxed);
    let result = reconcile_campaign(&object, &ctx).await;
    metrics::histogram!("ww_operator_reconcile_duration_seconds").record(started.elapsed().as_secs_f64());
    let key = key_of(&object);
    match &result {
        Ok(_) => {
            metrics::counter!("ww_operator_reconciles_total", "result" => "ok").increment(1);
            ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        }
        Err(e) => {
            metrics::counter!("ww_operator_reconciles_total", "result" => "error").increment(1);
            metrics::counter!("ww_operator_reconcile_failures_total", "reason" => e.reason()).increment(1);
        }
    }
    result
}

/// Transient errors back off per campaign: 0.5 s, 1 s, 2 s … at most a minute.
pub fn error_policy(object: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key_of(&object);
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let n = failures.entry(key.clone()).or_insert(0);
    *n = n.saturating_add(1);
    let delay = Duration::from_millis(500).saturating_mul(1 << (*n - 1).min(7)).min(Duration::from_secs(60));
    tracing::warn!(campaign = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn key_of(object: &DynamicObject) -> String {
    format!("{}/{}", object.metadata.namespace.as_deref().unwrap_or(""), object.metadata.name.as_deref().unwrap_or(""))
}

async fn reconcile_campaign(object: &DynamicObject, ctx: &Context) -> Result<Action, Error> {
    let (Some(namespace), Some(name)) = (object.metadata.namespace.clone(), object.metadata.name.clone()) else {
        return Err(Error::Unnamed);
    };
    let uid = object.metadata.uid.clone().unwrap_or_default();
    if object.metadata.deletion_timestamp.is_some() {
        // The children go with it (owner references). First its issuers stop, so nothing is
        // issued after the removal and the totals are final; then the removal is announced
        // with them, and it may go.
        if has_finalizer(object) {
            let announced = ctx.removals_announced.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&uid);
            if !announced {
                if let Some(wait) = wind_down(ctx, object).await? {
                    return Ok(Action::requeue(wait));
                }
                if let Some(announcer) = &ctx.announcer {
                    announcer.removed(&object.metadata, totals(ctx, object)).await?;
                }
                let mut removals = ctx.removals_announced.lock().unwrap_or_else(|e| e.into_inner());
                removals.retain(|_, at| at.elapsed() < REMOVALS_REMEMBERED);
                removals.insert(uid.clone(), Instant::now());
            }
            set_finalizer(ctx, object, false).await?;
        }
        forget(ctx, object);
        return Ok(Action::await_change());
    }
    // Without the finalizer a deletion could go unannounced; failing to add it (RBAC not yet
    // updated, a stale resourceVersion) must not stop the workload: retried shortly.
    let finalizer_retry = match &ctx.announcer {
        Some(_) if !has_finalizer(object) => match set_finalizer(ctx, object, true).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(campaign = %key_of(object), error = %e, "could not add the finalizer; retrying");
                metrics::counter!("ww_operator_reconcile_failures_total", "reason" => "finalizer").increment(1);
                Some(ANNOUNCE_RETRY)
            }
        },
        _ => None,
    };
    if !ctx.synced.load(Ordering::Acquire) {
        // An unsynced store reads as "no children": re-applying everything and routing away
        // from Ready issuers. Wait for the lists.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let now = (ctx.clock)();
    let watched: Option<CouponCampaignStatus> =
        object.data.get("status").and_then(|s| serde_json::from_value(s.clone()).ok());
    // What this replica last wrote is newer than a lagging watch.
    let status_key = status_key(object);
    let cached = ctx.last_status.lock().unwrap_or_else(|e| e.into_inner()).get(&status_key).map(|(s, _)| s.clone());
    let old_status = cached.or(watched);
    let generation = object.metadata.generation;

    // Read the object as a campaign; a malformed or invalid one is reported and waits for a change.
    let invalid = |problem: String| status::invalid(old_status.as_ref(), generation, &problem, now);
    let resource: CouponCampaign = match campaign::check::read(&serde_json::to_value(object)?) {
        Ok(resource) => resource,
        Err(problem) => {
            let new = invalid(format!("the resource cannot be read: {problem}"));
            write_status(ctx, object, old_status.as_ref(), &new, true).await?;
            return Ok(Action::await_change());
        }
    };
    let refusal = match Campaign::new(&name, resource.spec.clone()) {
        Err(e) => Err((e.to_string(), false)),
        Ok(c) => match (route_taken(ctx, object), &resource.spec.workload.image) {
            (Some(other), _) => Err((
                format!(
                    "metadata.name: `{name}` is already a campaign in namespace `{other}`; its route \
                     /api/campaigns/{name}/ is on one public host, so names are unique across namespaces"
                ),
                true,
            )),
            (None, Some(image)) if !ctx.config.image_allowed(image) => Err((
                format!(
                    "spec.workload.image: `{image}` is not among the images the operator allows \
                     (its --allowed-images); the issuers receive the platform's secrets"
                ),
                false,
            )),
            (None, _) => Ok(c),
        },
    };
    let campaign = match refusal {
        Ok(c) => c,
        Err((problem, collision)) => {
            // An invalid edit leaves the last valid workload as it was (0009); a name another
            // namespace routes loses its own route at once, and is looked at again in a minute
            // (the other may go away).
            if collision {
                let child = child_name(&name);
                if ctx.stores.ingresses.get(&ObjectRef::new(&child).within(&namespace)).is_some() {
                    delete::<Ingress>(ctx, &namespace, &child).await?;
                }
            }
            let new = invalid(problem);
            let old_phase = old_status.as_ref().and_then(|s| s.phase);
            write_status(ctx, object, old_status.as_ref(), &new, true).await?;
            if let (Some(recorder), Some(old)) = (&ctx.recorder, old_phase)
                && old != ResourcePhase::Invalid
            {
                publish_phase(recorder, object, old, ResourcePhase::Invalid, None).await;
            }
            return Ok(if collision { Action::requeue(Duration::from_secs(60)) } else { Action::await_change() });
        }
    };

    // Announced once per generation; a bus outage does not hold the workload back, it is
    // retried on the next look.
    let announce_retry = match &ctx.announcer {
        Some(announcer) => match announcer.defined(&resource).await {
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(campaign = %key_of(object), error = %e, "could not announce the campaign's definition; retrying");
                metrics::counter!("ww_operator_reconcile_failures_total", "reason" => "announce").increment(1);
                Some(ANNOUNCE_RETRY)
            }
        },
        None => None,
    };
    let counters = ctx.counters.latest(&uid);
    let today = campaign.day_of(now);
    let sold_out = match &counters {
        Some(c) => c.day == today && c.remaining_today == Some(0),
        // A new leader has no counts yet: the status keeps saying what the last ones said.
        None => old_status.as_ref().is_some_and(|s| s.day == Some(today) && s.remaining_today == Some(0)),
    };
    let plan = campaign.plan_at(now, Observed { sold_out });
    let child = child_name(&name);
    let deployment = ctx.stores.deployments.get(&ObjectRef::new(&child).within(&namespace));
    let running = Running {
        ready_replicas: deployment
            .as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.ready_replicas)
            .map_or(0, |r| u32::try_from(r).unwrap_or(0)),
    };
    let Some(built) = children::build(&resource, &campaign, &plan, &ctx.config, running) else {
        return Err(Error::Unnamed);
    };
    let drain = apply_children(ctx, &namespace, &status_key, &built, &plan, deployment.as_deref()).await?;

    let first_day = campaign.day_bounds(campaign.spec().schedule.start_date).0;
    let started = (now >= first_day).then_some(first_day);
    let endpoint = ctx.config.ingress_host.as_ref().map(|host| {
        let scheme = if ctx.config.ingress_tls_secret.is_some() { "https" } else { "http" };
        format!("{scheme}://{host}/api/campaigns/{name}/")
    });
    let seen =
        status::Seen { old: old_status.as_ref(), generation, running, counters: counters.as_ref(), endpoint, started };
    let new = status::desired(seen, &plan, now);
    let wait = write_status(ctx, object, old_status.as_ref(), &new, false).await?;
    if let (Some(recorder), Some(old), Some(phase)) =
        (&ctx.recorder, old_status.as_ref().and_then(|s| s.phase), new.phase)
        && old != phase
    {
        publish_phase(recorder, object, old, phase, plan.next_change).await;
    }
    let wait = [wait, drain, announce_retry, finalizer_retry].into_iter().flatten().min();
    Ok(requeue(&plan, now, wait))
}

/// How soon a definition the bus did not take is announced again.
const ANNOUNCE_RETRY: Duration = Duration::from_secs(5);

fn has_finalizer(object: &DynamicObject) -> bool {
    object.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == announce::FINALIZER))
}

/// Adds or removes the operator's finalizer: one merge patch of the whole list, conditional on
/// the `resourceVersion` read (a concurrent change of the list makes it 409 and retry).
async fn set_finalizer(ctx: &Context, object: &DynamicObject, present: bool) -> Result<(), Error> {
    let mut finalizers: Vec<String> = object
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != announce::FINALIZER)
        .collect();
    if present {
        finalizers.push(announce::FINALIZER.to_owned());
    }
    let patch = serde_json::json!({
        "metadata": { "finalizers": finalizers, "resourceVersion": object.metadata.resource_version }
    });
    let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &campaign_resource());
    match api.patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {
            count_write(ctx, "CouponCampaign", "patch");
            Ok(())
        }
        // Gone already: nothing holds it.
        Err(kube::Error::Api(e)) if e.code == 404 && !present => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Longest a deleted campaign is held for its issuers to stop before its removal is announced
/// anyway (pods that never terminate must not block a deletion forever).
const WIND_DOWN_LIMIT: Duration = Duration::from_secs(120);
/// How long a replica remembers that it announced a campaign's removal (far longer than any
/// watch lags).
const REMOVALS_REMEMBERED: Duration = Duration::from_secs(600);
/// How often a winding-down campaign is looked at.
const WIND_DOWN_POLL: Duration = Duration::from_secs(1);

/// Stops a deleted campaign's issuers: the route goes, the last issuers keep serving for the
/// route drain (the ingress stops sending to them), the autoscaler goes and the count drops to
/// zero; done once no issuer pod is left. `Some(wait)` while under way.
async fn wind_down(ctx: &Context, object: &DynamicObject) -> Result<Option<Duration>, Error> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
    let name = child_name(&object.name_any());
    let key = status_key(object);
    let started =
        *ctx.winding.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_insert_with(Instant::now);
    if started.elapsed() > WIND_DOWN_LIMIT {
        tracing::warn!(campaign = %key_of(object), "issuers still running after {WIND_DOWN_LIMIT:?}; announcing the removal anyway");
        return Ok(None);
    }
    // The API itself, not the watch caches: a cache that lags (a watch behind, a relist) would
    // read as "no route, no autoscaler, no issuers" and announce the removal while they run.
    let ingresses: Api<Ingress> = Api::namespaced(ctx.client.clone(), namespace);
    if ingresses.get_opt(&name).await?.is_some() {
        delete::<Ingress>(ctx, namespace, &name).await?;
        ctx.route_removed.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_insert_with(Instant::now);
    }
    let removed = ctx.route_removed.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied();
    if let Some(left) = removed.and_then(|t| ctx.route_drain.checked_sub(t.elapsed())) {
        return Ok(Some(left));
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    if hpas.get_opt(&name).await?.is_some() {
        delete::<HorizontalPodAutoscaler>(ctx, namespace, &name).await?;
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(deployment) = deployments.get_opt(&name).await? else {
        return Ok(None);
    };
    if deployment.spec.as_ref().and_then(|s| s.replicas) != Some(0) {
        let patch = serde_json::json!({"spec": {"replicas": 0}});
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
        let patch = Patch::Merge(&patch);
        retry_conflicts(|| deployments.patch_scale(&name, &params, &patch)).await?;
        count_write(ctx, "Deployment", "scale");
        return Ok(Some(WIND_DOWN_POLL));
    }
    let left = deployment.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    Ok((left > 0).then_some(WIND_DOWN_POLL))
}

/// The totals a removal carries: the last counts the issuers published, else the status's.
fn totals(ctx: &Context, object: &DynamicObject) -> Option<platform::events::contracts::CampaignTotals> {
    use platform::events::contracts::CampaignTotals;
    let uid = object.metadata.uid.as_deref().unwrap_or_default();
    if let Some(c) = ctx.counters.latest(uid) {
        return Some(CampaignTotals { issued_total: c.issued_total, counted_at: c.at });
    }
    let status: CouponCampaignStatus = serde_json::from_value(object.data.get("status")?.clone()).ok()?;
    Some(CampaignTotals { issued_total: status.issued_total?, counted_at: status.counted_at? })
}

/// Drops what this replica kept about a deleted campaign.
fn forget(ctx: &Context, object: &DynamicObject) {
    let key = key_of(object);
    ctx.counters.forget(object.metadata.uid.as_deref().unwrap_or_default());
    ctx.last_status.lock().unwrap_or_else(|e| e.into_inner()).remove(&status_key(object));
    ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
    ctx.route_removed.lock().unwrap_or_else(|e| e.into_inner()).remove(&status_key(object));
    ctx.winding.lock().unwrap_or_else(|e| e.into_inner()).remove(&status_key(object));
}

fn status_key(object: &DynamicObject) -> String {
    format!("{}/{}", key_of(object), object.metadata.uid.as_deref().unwrap_or(""))
}

/// Another namespace's campaign of the same name that came first (earlier creation, then
/// namespace order): it owns the route.
fn route_taken(ctx: &Context, object: &DynamicObject) -> Option<String> {
    let store = ctx.campaigns.get()?;
    let me = (object.metadata.creation_timestamp.as_ref().map(|t| t.0), object.metadata.namespace.clone());
    store
        .state()
        .iter()
        .filter(|o| o.metadata.name == object.metadata.name && o.metadata.namespace != object.metadata.namespace)
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        // Only a campaign that runs holds the name: an invalid one does not.
        .filter(|o| o.data.pointer("/status/phase").and_then(serde_json::Value::as_str) != Some("Invalid"))
        .map(|o| (o.metadata.creation_timestamp.as_ref().map(|t| t.0), o.metadata.namespace.clone()))
        .filter(|other| *other < me)
        .min()
        .and_then(|(_, namespace)| namespace)
}

/// When to look again: at the plan's next change; sooner while open (issuers going silent show
/// in the status) or when a count-only status write was held back.
fn requeue(plan: &Plan, now: DateTime<Utc>, held_back: Option<Duration>) -> Action {
    let mut wait = plan.next_change.map(|t| (t - now).to_std().unwrap_or(Duration::ZERO));
    if matches!(plan.phase, ResourcePhase::Open | ResourcePhase::SoldOut | ResourcePhase::Prewarming) {
        wait = Some(wait.map_or(OPEN_RECHECK, |w| w.min(OPEN_RECHECK)));
    }
    if let Some(held) = held_back {
        wait = Some(wait.map_or(held, |w| w.min(held)));
    }
    match wait {
        // Wake a moment after the change so the plan read then is the new one.
        Some(w) => Action::requeue(w + Duration::from_millis(10)),
        None => Action::await_change(),
    }
}

pub use crate::apply::covers;
use crate::apply::retry_conflicts;

async fn apply_one<K>(ctx: &Context, store: &Store<K>, namespace: &str, desired: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
{
    crate::apply::apply_one(&ctx.client, &ctx.writes, store, namespace, desired).await
}

fn count_write(ctx: &Context, kind: &str, verb: &'static str) {
    crate::apply::count_write(&ctx.writes, kind, verb);
}

/// Applies the children; returns how long a scale to zero waits for the route to drain.
async fn apply_children(
    ctx: &Context,
    namespace: &str,
    key: &str,
    built: &Children,
    plan: &Plan,
    deployment: Option<&Deployment>,
) -> Result<Option<Duration>, Error> {
    let stores = &ctx.stores;
    let name = built.deployment.metadata.name.clone().unwrap_or_default();
    apply_one(ctx, &stores.config_maps, namespace, &built.config_map).await?;
    apply_one(ctx, &stores.services, namespace, &built.service).await?;
    apply_one(ctx, &stores.pdbs, namespace, &built.pdb).await?;
    // The route first: it goes once the issuers stop serving, and comes only once they are Ready.
    match &built.ingress {
        Some(ingress) => {
            apply_one(ctx, &stores.ingresses, namespace, ingress).await?;
            ctx.route_removed.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        }
        None => {
            if stores.ingresses.get(&ObjectRef::new(&name).within(namespace)).is_some() {
                delete::<Ingress>(ctx, namespace, &name).await?;
                ctx.route_removed.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_owned(), Instant::now());
            }
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let replicas = i32::try_from(built.replicas).unwrap_or(i32::MAX);
    let current = match deployment {
        // Created with its first count (an Update, not an Apply): the applied fields never
        // include `replicas`, so an autoscaler can own it later without a fight.
        None => {
            let mut first = built.deployment.clone();
            if let Some(spec) = first.spec.as_mut() {
                spec.replicas = Some(replicas);
            }
            let params = PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() };
            match deployments.create(&params, &first).await {
                Ok(_) => {
                    count_write(ctx, "Deployment", "create");
                    Some(replicas)
                }
                // The watch had not shown it yet: apply, and set the count below.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    apply_one(ctx, &stores.deployments, namespace, &built.deployment).await?;
                    None
                }
                Err(e) => return Err(e.into()),
            }
        }
        Some(d) => {
            apply_one(ctx, &stores.deployments, namespace, &built.deployment).await?;
            d.spec.as_ref().and_then(|s| s.replicas)
        }
    };
    match &built.hpa {
        Some(hpa) => apply_one(ctx, &stores.hpas, namespace, hpa).await?,
        None => {
            if stores.hpas.get(&ObjectRef::new(&name).within(namespace)).is_some() {
                delete::<HorizontalPodAutoscaler>(ctx, namespace, &name).await?;
            }
        }
    }
    // The count, through the scale subresource: a fixed count exactly; an autoscaled one raised
    // to its floor (an HPA never scales a Deployment up from zero).
    let wanted = match plan.scale {
        Scale::Fixed(_) => (current != Some(replicas)).then_some(replicas),
        Scale::Autoscaled { .. } => current.is_none_or(|c| c < replicas).then_some(replicas),
    };
    let mut drain = None;
    if let Some(wanted) = wanted {
        let removed = ctx.route_removed.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied();
        let draining = removed.and_then(|t| ctx.route_drain.checked_sub(t.elapsed()));
        match draining {
            Some(left) if wanted == 0 => drain = Some(left),
            _ => {
                let patch = serde_json::json!({"spec": {"replicas": wanted}});
                let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
                let patch = Patch::Merge(&patch);
                retry_conflicts(|| deployments.patch_scale(&name, &params, &patch)).await?;
                count_write(ctx, "Deployment", "scale");
            }
        }
    }
    Ok(drain)
}

async fn delete<K>(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + Debug + DeserializeOwned,
{
    crate::apply::delete::<K>(&ctx.client, &ctx.writes, namespace, name).await
}

/// Writes `new` when it differs from `current` (the status this replica last wrote, or the
/// watched one). A change only in the counts waits until [`STATUS_COUNTS_INTERVAL`] has passed
/// since the last write; the wait left is returned.
async fn write_status(
    ctx: &Context,
    object: &DynamicObject,
    current: Option<&CouponCampaignStatus>,
    new: &CouponCampaignStatus,
    at_once: bool,
) -> Result<Option<Duration>, Error> {
    if !status::differs(current, new) {
        return Ok(None);
    }
    let key = status_key(object);
    let last = ctx.last_status.lock().unwrap_or_else(|e| e.into_inner()).get(&key).map(|(_, t)| *t);
    if !at_once
        && status::only_counts_changed(current, new)
        && let Some(left) = last.and_then(|t| STATUS_COUNTS_INTERVAL.checked_sub(t.elapsed()))
    {
        return Ok(Some(left));
    }
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        object.metadata.namespace.as_deref().unwrap_or_default(),
        &campaign_resource(),
    );
    let body = serde_json::json!({
        "apiVersion": campaign::API_VERSION,
        "kind": campaign::KIND,
        "status": new,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = object.name_any();
    let patch = Patch::Apply(&body);
    retry_conflicts(|| api.patch_status(&name, &params, &patch)).await?;
    ctx.writes.status.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("ww_operator_status_writes_total").increment(1);
    ctx.last_status.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (new.clone(), Instant::now()));
    Ok(None)
}

async fn publish_phase(
    recorder: &Recorder,
    object: &DynamicObject,
    old: ResourcePhase,
    new: ResourcePhase,
    next_change: Option<DateTime<Utc>>,
) {
    let note = match next_change {
        Some(next) => format!("{old} → {new}; next change at {}", next.to_rfc3339()),
        None => format!("{old} → {new}"),
    };
    let event = Event {
        type_: if new == ResourcePhase::Invalid { EventType::Warning } else { EventType::Normal },
        reason: new.as_str().to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    let reference = object.object_ref(&campaign_resource());
    if let Err(e) = recorder.publish(&event, &reference).await {
        tracing::warn!(error = %e, "could not publish an event");
    }
}

/// The watches on the children, with their stores; the streams trigger reconciles of the owner.
pub struct ChildWatches {
    pub stores: Stores,
    /// Where the campaigns and their children are watched.
    scope: Scope,
    controller: Box<dyn FnOnce(Controller<DynamicObject>) -> Controller<DynamicObject> + Send>,
}

/// A watch of one kind of child in `scope`, with its store (for both controllers).
pub(crate) fn watch_children<K>(
    client: &Client,
    scope: &Scope,
    config: &watcher::Config,
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Send
        + Sync
        + DeserializeOwned
        + 'static,
{
    let api: Api<K> = scope.api(client);
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config.clone())).default_backoff().touched_objects();
    (reader, stream)
}

impl ChildWatches {
    /// Watches every kind of child the operator creates (only objects it manages) in `scope`.
    pub fn new(client: &Client, scope: &Scope) -> Self {
        let config = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
        let (deployments, d) = watch_children::<Deployment>(client, scope, &config);
        let (config_maps, c) = watch_children::<ConfigMap>(client, scope, &config);
        let (services, s) = watch_children::<Service>(client, scope, &config);
        let (hpas, h) = watch_children::<HorizontalPodAutoscaler>(client, scope, &config);
        let (pdbs, p) = watch_children::<PodDisruptionBudget>(client, scope, &config);
        let (ingresses, i) = watch_children::<Ingress>(client, scope, &config);
        let stores = Stores { deployments, config_maps, services, hpas, pdbs, ingresses };
        Self {
            stores,
            scope: scope.clone(),
            controller: Box::new(move |controller| {
                controller.owns_stream(d).owns_stream(c).owns_stream(s).owns_stream(h).owns_stream(p).owns_stream(i)
            }),
        }
    }

    /// Resolves once every watch has listed its objects once.
    pub async fn synced(stores: &Stores) {
        let _ = futures::join!(
            stores.deployments.wait_until_ready(),
            stores.config_maps.wait_until_ready(),
            stores.services.wait_until_ready(),
            stores.hpas.wait_until_ready(),
            stores.pdbs.wait_until_ready(),
            stores.ingresses.wait_until_ready(),
        );
    }
}

/// Runs the controller until `shutdown` resolves. `reconcile_on` names campaigns to look at again
/// now (new counters). `ready` turns true once every watch has listed once.
pub async fn run(
    ctx: Arc<Context>,
    watches: ChildWatches,
    reconcile_on: impl Stream<Item = ObjectRef<DynamicObject>> + Send + 'static,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let ar = campaign_resource();
    let campaigns = watches.scope.api_with(&ctx.client, &ar);
    let stores = ctx.stores.clone();
    // Bounded concurrency: each reconcile holds an API connection and its buffers; hundreds at
    // once buy no speed against one API server and cost memory.
    let controller = Controller::new_with(campaigns, watcher::Config::default(), ar)
        .with_config(kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY));
    let controller = (watches.controller)(controller);
    let _ = ctx.campaigns.set(controller.store());
    let synced_ctx = ctx.clone();
    // (The controller's own store of campaigns never reports ready in kube-runtime 5.0, though
    // it fills; the children's stores do, and reconciles wait for nothing else.)
    tokio::spawn(async move {
        ChildWatches::synced(&stores).await;
        synced_ctx.synced.store(true, Ordering::Release);
        ready.set(true);
        tracing::info!("watches synced; reconciling");
    });
    controller
        .reconcile_on(reconcile_on)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

/// The campaign with `uid`, as the controller's watch sees it (counts arrive by uid).
pub fn campaign_by_uid(ctx: &Context, uid: &str) -> Option<ObjectRef<DynamicObject>> {
    let store = ctx.campaigns.get()?;
    let object = store.state().into_iter().find(|o| o.metadata.uid.as_deref() == Some(uid))?;
    Some(ObjectRef::from_obj_with(object.as_ref(), campaign_resource()))
}

/// The campaigns to reconcile because their counts changed: the uids a
/// [`crate::counters::CountsFeed`] sends, as references to the watched campaigns (a uid no
/// campaign has any more is dropped).
pub fn on_counts(
    ctx: Arc<Context>,
    changed: tokio::sync::mpsc::Receiver<String>,
) -> impl Stream<Item = ObjectRef<DynamicObject>> + Send + 'static {
    futures::stream::unfold(changed, |mut rx| async move { rx.recv().await.map(|uid| (uid, rx)) })
        .filter_map(move |uid| std::future::ready(campaign_by_uid(&ctx, &uid)))
}

/// The Reporter of Events: the operator's Deployment and this pod.
pub fn reporter(instance: Option<String>) -> Reporter {
    Reporter { controller: "ww-operator".to_owned(), instance }
}
