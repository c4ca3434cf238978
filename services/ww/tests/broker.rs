//! Proof that events really cross the Kafka broker: a signup's `UserRegistered` is read
//! back from the topic by an independent consumer, and the profile is built by the user
//! service's consumer group through the same broker.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestApp};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
async fn a_signup_event_goes_through_the_broker_to_the_profile() {
    let app = TestApp::on(Backend::Real).await.expect("real backends");
    let env = common::RealEnv::get();
    let (user_id, token, _) = app.account(&common::unique_email("broker")).await;

    let topic = format!("{}identity.users", app.kafka_prefix);
    let probe: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka)
        .set("group.id", format!("{}probe", app.kafka_prefix))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    probe.subscribe(&[&topic]).unwrap();
    let started = Instant::now();
    let event = loop {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        let msg =
            tokio::time::timeout(left, probe.recv()).await.expect("UserRegistered on the topic within 60s").unwrap();
        assert_eq!(msg.key(), Some(user_id.as_bytes()), "keyed by user id");
        let event: serde_json::Value = serde_json::from_slice(msg.payload().unwrap()).unwrap();
        if event["data"]["userId"] == user_id.as_str() {
            break event;
        }
    };
    assert_eq!(event["type"], "UserRegistered");
    assert_eq!(event["source"], "auth");
    assert!(event["id"].as_str().is_some() && event["occurredAt"].as_str().is_some());

    let me = app.wait_active(&token).await;
    assert_eq!(me["userId"], user_id.as_str());
}
