//! Fault drills that really fault, on PostgreSQL, Redis and the Kafka broker: two issuer
//! replicas (separate `ww` processes) behind a crowd over HTTP, a persister process, and
//! mid-burst a process killed with SIGKILL, the broker down longer than the producer's
//! message timeout, Redis restarted empty or from an older snapshot, or clients that give
//! up after a few milliseconds and come back after the sell-out. Each drill ends with
//! [`Cluster::audit`]. Redis and the broker are private instances on their own ports
//! whenever a drill kills them (never the shared ones).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::RealEnv;
use common::cluster::{Cluster, Crowd, MESSAGE_TIMEOUT_MS, Told, after_issued, campaign};
use common::procs::{RedisServer, Tansu};

/// Units per day, and after how many coupons the fault strikes: small enough to run in
/// seconds, slow enough that the fault lands while units are still being handed out.
const DAILY: u32 = 120;
const FAULT_AT: usize = 25;
const REPLICAS: usize = 2;

/// Runs `crowd` against a fresh cluster on `env` while `fault` strikes once `FAULT_AT`
/// coupons are out, then audits. Returns what the crowd was told.
async fn drill<F>(env: RealEnv, crowd: Crowd, fault: F) -> Told
where
    F: AsyncFnOnce(&Cluster, &AtomicUsize),
{
    let cluster = Cluster::start(env, campaign(DAILY), REPLICAS).await;
    let progress = Arc::new(AtomicUsize::new(0));
    let strike = async {
        let at = after_issued(&progress, FAULT_AT).await;
        fault(&cluster, &progress).await;
        at
    };
    let (told, at) = tokio::join!(crowd.run(&cluster, progress.clone()), strike);
    assert!(at < DAILY as usize, "the fault struck mid-burst (after {at} coupons)");
    cluster.audit(&told).await;
    told
}

fn shared() -> RealEnv {
    RealEnv::get()
}

drill! {
    async fn an_issuer_replica_killed_mid_burst_loses_and_oversells_nothing() {
        drill(shared(), Crowd::default(), async |c: &Cluster, _: &AtomicUsize| {
            c.kill_issuer(0).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.start_issuer(0).await;
        })
        .await;
    }
}

drill! {
    async fn the_persister_killed_mid_burst_writes_every_coupon_once() {
        drill(shared(), Crowd::default(), async |c: &Cluster, _: &AtomicUsize| {
            c.kill_persister().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.restart_persister_after_crash().await;
        })
        .await;
    }
}

drill! {
    async fn clients_that_give_up_after_milliseconds_get_their_coupon_after_the_sell_out() {
        let crowd = Crowd { abandon_every: 4, abandon_after: Duration::from_millis(2), ..Crowd::default() };
        let told = drill(shared(), crowd, async |_: &Cluster, _: &AtomicUsize| {}).await;
        assert!(told.abandoned > 0, "someone gave up mid-request: {told:?}");
    }
}

drill! {
    async fn redis_killed_and_restarted_empty_is_rebuilt_before_any_answer() {
        let redis = Arc::new(tokio::sync::Mutex::new(Some(RedisServer::start(&[]))));
        let url = redis.lock().await.as_ref().unwrap().url();
        let port = redis.lock().await.as_ref().unwrap().port;
        let env = RealEnv { redis: url, ..shared() };
        let keep = redis.clone();
        let told = drill(env, Crowd::default(), async move |_: &Cluster, _: &AtomicUsize| {
            keep.lock().await.take(); // SIGKILL: everything in it is gone
            tokio::time::sleep(Duration::from_millis(300)).await;
            *keep.lock().await = Some(RedisServer::start_on(port, &[]));
        })
        .await;
        assert!(told.statuses.get(&503).copied().unwrap_or(0) > 0, "the outage was seen: {:?}", told.statuses);
    }
}

drill! {
    async fn redis_restored_from_an_older_snapshot_is_rebuilt_not_trusted() {
        // Snapshots go to a folder of the test's; the restarted server loads the older one.
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = dir.path().display().to_string();
        let args = ["--dir", dir_arg.as_str(), "--dbfilename", "dump.rdb"];
        let redis = Arc::new(tokio::sync::Mutex::new(Some(RedisServer::start(&args))));
        let (url, port) = {
            let r = redis.lock().await;
            (r.as_ref().unwrap().url(), r.as_ref().unwrap().port)
        };
        let env = RealEnv { redis: url.clone(), ..shared() };
        let keep = redis.clone();
        drill(env, Crowd::default(), async move |_: &Cluster, _: &AtomicUsize| {
            // SAVE now (units already taken are in it), keep issuing, then crash and come
            // back from that snapshot: the epoch is there, the recent takes are not.
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let _: () = redis::cmd("SAVE").query_async(&mut conn).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            keep.lock().await.take();
            *keep.lock().await = Some(RedisServer::start_on(port, &args));
        })
        .await;
    }
}

drill! {
    async fn the_broker_down_longer_than_the_producer_timeout_loses_and_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(tokio::sync::Mutex::new(Some(Tansu::start(dir.path()))));
        let (addr, port) = {
            let b = broker.lock().await;
            (b.as_ref().unwrap().address(), b.as_ref().unwrap().port)
        };
        let env = RealEnv { kafka: addr, ..shared() };
        let keep = broker.clone();
        let data = dir.path().to_path_buf();
        let outage = Duration::from_millis(MESSAGE_TIMEOUT_MS * 2);
        let told = drill(env, Crowd::default(), async move |_: &Cluster, progress: &AtomicUsize| {
            keep.lock().await.take(); // SIGKILL; the log is on disk
            let down = Instant::now();
            tokio::time::sleep(outage).await;
            let before = progress.load(Ordering::SeqCst);
            *keep.lock().await = Some(Tansu::start_on(port, &data));
            let back = Instant::now();
            eprintln!("broker down for {:?} (producer message timeout {MESSAGE_TIMEOUT_MS} ms)", down.elapsed());
            while progress.load(Ordering::SeqCst) == before {
                assert!(back.elapsed() < Duration::from_secs(15), "issuing did not recover within 15 s");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            eprintln!("issuing recovered {:?} after the broker was back (no broker restart needed)", back.elapsed());
        })
        .await;
        assert!(told.statuses.get(&503).copied().unwrap_or(0) > 0, "the outage was seen: {:?}", told.statuses);
        assert_eq!(Tansu::panic_in(dir.path()), None, "the broker itself broke");
    }
}
