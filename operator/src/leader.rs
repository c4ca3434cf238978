//! Leader election through a `coordination.k8s.io/v1` Lease, so two operator replicas can run
//! and only one reconciles.
//!
//! Expiry is judged on this replica's own monotonic clock, never by comparing `renewTime` with
//! this replica's wall clock: a candidate that sees the lease unchanged (same holder, same
//! `resourceVersion`) for a whole `leaseDurationSeconds` treats it as expired. Two replicas
//! whose clocks disagree therefore still agree on who leads. Every write carries the
//! `resourceVersion` it read, so two candidates taking over at once cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    pub duration: Duration,
    /// How often the holder renews and a candidate looks.
    pub retry: Duration,
}

/// What a candidate last saw of the lease, and since when (monotonic).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    holder: Option<String>,
    version: Option<String>,
}

fn micro_now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Runs the election until `stop` fires; `leading` says whether this replica leads. Losing the
/// lease after holding it sets `leading` to false at once (the caller stops reconciling). On
/// `stop` a held lease is released, so the caller sends it only once it stopped reconciling.
///
/// A holder steps down when it has not renewed within two thirds of the lease duration,
/// counted from before it sent its last successful renew, and every look at the lease is cut
/// off after a third of it: a stalled connection cannot keep a replica leading while another
/// takes over.
pub async fn run(api: Api<Lease>, config: LeaseConfig, leading: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
    let mut seen: Option<(Seen, Instant)> = None;
    let mut renewed: Option<Instant> = None;
    let deadline = config.duration * 2 / 3;
    let attempt = config.retry.max(Duration::from_millis(100)).min(config.duration / 3);
    loop {
        let sent = Instant::now();
        let result = tokio::time::timeout(attempt, step(&api, &config, &mut seen)).await;
        let now_leading = match result {
            Ok(Ok(true)) => {
                renewed = Some(sent);
                true
            }
            Ok(Ok(false)) => false,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lease: cannot read or write the lease");
                *leading.borrow() && renewed.is_some_and(|t| t.elapsed() < deadline)
            }
            Err(_) => {
                tracing::warn!(after = ?attempt, "lease: the API did not answer in time");
                *leading.borrow() && renewed.is_some_and(|t| t.elapsed() < deadline)
            }
        };
        if *leading.borrow() != now_leading {
            tracing::info!(identity = %config.identity, leading = now_leading, "lease: leadership changed");
            let _ = leading.send(now_leading);
        }
        // Never sleep past the renew deadline while leading.
        let pause = match (now_leading, renewed) {
            (true, Some(t)) => config.retry.min(deadline.saturating_sub(t.elapsed())),
            _ => config.retry,
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {
                if *leading.borrow() {
                    let _ = leading.send(false);
                    let _ = tokio::time::timeout(attempt, release(&api, &config)).await;
                }
                return;
            }
        }
    }
}

/// One look at the lease: renew it, take it over, or wait. Returns whether this replica leads.
async fn step(api: &Api<Lease>, config: &LeaseConfig, seen: &mut Option<(Seen, Instant)>) -> Result<bool, kube::Error> {
    let duration_s = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX);
    let Some(lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_s),
                acquire_time: Some(micro_now()),
                renew_time: Some(micro_now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => {
                *seen = Some((Seen { holder: Some(config.identity.clone()), version: None }, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let observed = Seen { holder: spec.holder_identity.clone(), version: lease.metadata.resource_version.clone() };
    let unchanged_since = match seen.as_ref() {
        Some((last, since)) if *last == observed => *since,
        _ => Instant::now(),
    };
    *seen = Some((observed.clone(), unchanged_since));
    let mine = observed.holder.as_deref() == Some(config.identity.as_str());
    let lease_duration =
        spec.lease_duration_seconds.map_or(config.duration, |s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    let vacant = observed.holder.as_deref().is_none_or(str::is_empty);
    let expired = unchanged_since.elapsed() >= lease_duration;
    if !(mine || vacant || expired) {
        return Ok(false);
    }
    let mut next = lease.clone();
    let mut next_spec = spec.clone();
    if !mine {
        next_spec.holder_identity = Some(config.identity.clone());
        next_spec.acquire_time = Some(micro_now());
        next_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    next_spec.lease_duration_seconds = Some(duration_s);
    next_spec.renew_time = Some(micro_now());
    next.spec = Some(next_spec);
    // `replace` sends the resourceVersion read above: a 409 means another replica wrote first.
    match api.replace(&config.name, &PostParams::default(), &next).await {
        Ok(written) => {
            let version = written.metadata.resource_version.clone();
            *seen = Some((Seen { holder: Some(config.identity.clone()), version }, Instant::now()));
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up on shutdown so a standby takes over at its next look, not a lease later.
async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = Some(micro_now());
    if let Err(e) = api.replace(&config.name, &PostParams::default(), &lease).await {
        tracing::warn!(error = %e, "lease: could not release the lease on shutdown");
    }
}
