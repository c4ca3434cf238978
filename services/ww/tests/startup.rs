//! Replicas starting together: every role's start (schema creation, migrations, topics,
//! consumers) is safe with N processes starting at the same moment against an empty
//! database — as the HPA and a fresh install do.

mod common;

use std::sync::Arc;

use common::RealEnv;
use platform::clock::Clock;
use platform::http::HttpSettings;
use tokio::sync::watch;
use ww::cli::ServiceName;

const REPLICAS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
async fn replicas_starting_together_against_an_empty_database_all_come_up() {
    let env = RealEnv::get();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let (stop_tx, stop) = watch::channel(false);
    let keys = Arc::new(common::test_keys());
    let roles = [ServiceName::Auth, ServiceName::User, ServiceName::Coupon];
    // Every replica connects first, then all start their roles at once.
    let mut contexts = Vec::new();
    for _ in 0..REPLICAS {
        contexts.push(common::real_context(&env, &id, Clock::System, keys.clone(), stop.clone()).await);
    }
    let config = common::fast_config();
    let http = HttpSettings::default();
    let starts = contexts.iter().map(|ctx| ww::app::build(&roles, ctx, &config, &http));
    let results = futures::future::join_all(starts).await;
    for (i, started) in results.into_iter().enumerate() {
        if let Err(e) = started {
            panic!("replica {i} did not come up: {e:#}");
        }
    }
    let _ = stop_tx.send(true);
}
