//! The chat topic's admin calls against the real Kafka-protocol broker of the test command
//! (tansu; `WW_TEST_KAFKA_BROKERS`): a missing topic reads as missing, creating gives the count
//! asked, and growing either gives the new count or is refused and reported as such — whichever
//! the broker does, the outcome must say what the broker then really has.

use operator::chat::topic::{KafkaTopicAdmin, TopicAdmin, ensure};
use platform::events::KafkaConfig;

fn admin() -> KafkaTopicAdmin {
    KafkaTopicAdmin::new(&KafkaConfig {
        kafka_brokers: Some(platform::testing::backend("WW_TEST_KAFKA_BROKERS")),
        kafka_prefix: String::new(),
        kafka_group_prefix: None,
        kafka_partitions: 1,
        kafka_replication_factor: 1,
        kafka_min_insync_replicas: 1,
        kafka_message_timeout_ms: 3000,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs Kafka")]
async fn the_broker_creates_the_topic_and_grows_it_or_the_refusal_is_reported_with_what_it_has() {
    let admin = admin();
    let topic = format!("test-operator-{}.chat.snow.messages", uuid::Uuid::new_v4().simple());
    assert_eq!(admin.partitions(&topic).await.unwrap(), None, "a topic nobody created is missing");

    let created = ensure(&admin, &topic, 1).await;
    assert_eq!((created.partitions, created.exists, created.reason), (Some(1), true, "Created"), "{created:?}");
    assert_eq!(admin.partitions(&topic).await.unwrap(), Some(1));

    let grown = ensure(&admin, &topic, 3).await;
    let really = admin.partitions(&topic).await.unwrap();
    eprintln!("growing {topic} from 1 to 3 partitions: {grown:?}; the broker then reports {really:?}");
    match grown.reason {
        "Grown" => assert_eq!(really, Some(3), "{grown:?}"),
        "GrowRefused" => {
            assert_eq!(really, Some(1), "a refused grow changed nothing: {grown:?}");
            assert_eq!(grown.partitions, Some(1));
            assert!(!grown.ready && grown.exists, "{grown:?}");
            // tansu 0.6 does not offer CreatePartitions (API key 37) in its ApiVersions, so
            // librdkafka refuses the call itself (0011); the broker's no, not an outage.
            assert!(grown.message.contains("the broker refused"), "{grown:?}");
        }
        other => panic!("unexpected outcome {other}: {grown:?}"),
    }
    // Asking for fewer than there are never shrinks the topic.
    let fewer = ensure(&admin, &topic, 1).await;
    assert_eq!(admin.partitions(&topic).await.unwrap(), really);
    if really == Some(3) {
        assert_eq!(fewer.reason, "MorePartitionsThanAsked", "{fewer:?}");
    }
}
