//! The counters contract, run against the in-memory implementation and real Redis.
#![cfg(feature = "storage")]

use std::time::Duration;

use platform::counters::Counters;

async fn redis() -> Counters {
    let url = platform::testing::backend("WW_TEST_REDIS_URL");
    let prefix = format!("ww-test:{}:", uuid::Uuid::new_v4().simple());
    Counters::redis(&url, &prefix).await.expect("redis")
}

/// Runs each scenario `async fn name(label, counters)` on memory and on Redis.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("memory", platform::counters::Counters::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs Redis")]
                async fn $name() {
                    super::$name("redis", super::redis().await).await;
                }
            )*
        }
    };
}

on_both!(
    a_window_counts_hits_and_expires_as_a_whole,
    reset_forgets_and_keys_are_independent,
    concurrent_hits_are_each_counted_once
);

async fn a_window_counts_hits_and_expires_as_a_whole(name: &str, c: Counters) {
    let window = Duration::from_millis(400);
    assert_eq!(c.hit("k", window).await.unwrap().count, 1, "{name}");
    assert_eq!(c.hit("k", window).await.unwrap().count, 2, "{name}");
    let peek = c.peek("k").await.unwrap();
    assert_eq!(peek.count, 2, "{name}: peek does not count");
    assert!(peek.resets_in > Duration::ZERO && peek.resets_in <= window, "{name}: {peek:?}");
    // Later hits do not extend the window.
    tokio::time::sleep(Duration::from_millis(250)).await;
    c.hit("k", window).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(c.peek("k").await.unwrap().count, 0, "{name}: expired with its window");
    assert_eq!(c.hit("k", window).await.unwrap().count, 1, "{name}: a new window starts");
}

async fn reset_forgets_and_keys_are_independent(name: &str, c: Counters) {
    let w = Duration::from_secs(30);
    c.hit("a", w).await.unwrap();
    c.hit("a", w).await.unwrap();
    c.hit("b", w).await.unwrap();
    c.reset("a").await.unwrap();
    assert_eq!(c.peek("a").await.unwrap().count, 0, "{name}");
    assert_eq!(c.peek("b").await.unwrap().count, 1, "{name}");
    assert_eq!(c.peek("never").await.unwrap().count, 0, "{name}");
}

async fn concurrent_hits_are_each_counted_once(name: &str, c: Counters) {
    let hits = (0..200).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.hit("burst", Duration::from_secs(30)).await.unwrap().count })
    });
    let mut counts: Vec<u64> = futures::future::join_all(hits).await.into_iter().map(Result::unwrap).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=200).collect::<Vec<_>>(), "{name}: every hit saw a distinct count");
}
