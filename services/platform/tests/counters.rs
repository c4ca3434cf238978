//! The counters contract, run against the in-memory implementation and real Redis.

use std::time::Duration;

use platform::counters::Counters;

async fn backends() -> Vec<(&'static str, Counters)> {
    let mut all = vec![("memory", Counters::memory())];
    match std::env::var("WW_TEST_REDIS_URL") {
        Ok(url) => {
            let prefix = format!("ww-test:{}:", uuid::Uuid::new_v4().simple());
            all.push(("redis", Counters::redis(&url, &prefix).await.expect("redis")));
        }
        Err(_) => {
            assert!(std::env::var("WW_TEST_REQUIRE_BACKENDS").is_err(), "WW_TEST_REDIS_URL is required");
            eprintln!("redis half skipped: WW_TEST_REDIS_URL is not set (scripts/test.sh sets it)");
        }
    }
    all
}

#[tokio::test]
async fn a_window_counts_hits_and_expires_as_a_whole() {
    for (name, c) in backends().await {
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
}

#[tokio::test]
async fn reset_forgets_and_keys_are_independent() {
    for (name, c) in backends().await {
        let w = Duration::from_secs(30);
        c.hit("a", w).await.unwrap();
        c.hit("a", w).await.unwrap();
        c.hit("b", w).await.unwrap();
        c.reset("a").await.unwrap();
        assert_eq!(c.peek("a").await.unwrap().count, 0, "{name}");
        assert_eq!(c.peek("b").await.unwrap().count, 1, "{name}");
        assert_eq!(c.peek("never").await.unwrap().count, 0, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hits_are_each_counted_once() {
    for (name, c) in backends().await {
        let hits = (0..200).map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.hit("burst", Duration::from_secs(30)).await.unwrap().count })
        });
        let mut counts: Vec<u64> = futures::future::join_all(hits).await.into_iter().map(Result::unwrap).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=200).collect::<Vec<_>>(), "{name}: every hit saw a distinct count");
    }
}
