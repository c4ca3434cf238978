//! The S3 proof store against a real S3 API: moto's server, started here on a port of its own
//! (scripts/test.sh installs it and sets WW_TEST_MOTO_SERVER). Put, get, delete, a missing
//! object, and keys the service did not generate refused before any request is made.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mission::objects::{ObjectConfig, Objects, StoreKind, new_key};
use rusty_s3::S3Action as _;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_moto() -> (Moto, String) {
    let bin = platform::testing::backend("WW_TEST_MOTO_SERVER");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto(child);
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not listen within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (moto, format!("http://127.0.0.1:{port}"))
}

fn config(endpoint: &str, bucket: &str) -> ObjectConfig {
    ObjectConfig {
        proof_store: StoreKind::S3,
        s3_endpoint: Some(endpoint.to_owned()),
        s3_bucket: Some(bucket.to_owned()),
        s3_access_key_id: Some("test-key".to_owned()),
        s3_secret_access_key: Some("test-secret".to_owned()),
        s3_path_style: true,
        ..ObjectConfig::default()
    }
}

async fn create_bucket(endpoint: &str, name: &str) {
    let bucket =
        rusty_s3::Bucket::new(endpoint.parse().unwrap(), rusty_s3::UrlStyle::Path, name.to_owned(), "us-east-1")
            .unwrap();
    let credentials = rusty_s3::Credentials::new("test-key", "test-secret");
    let url = bucket.create_bucket(&credentials).sign(Duration::from_secs(60));
    let r = reqwest::Client::new().put(url).header(reqwest::header::CONTENT_LENGTH, "0").send().await.unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
}

#[tokio::test]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs moto_server")]
async fn proofs_round_trip_through_s3() {
    let (_moto, endpoint) = start_moto().await;
    create_bucket(&endpoint, "ww-proofs").await;
    let store = Objects::open(&config(&endpoint, "ww-proofs"), Path::new("/nonexistent")).unwrap();
    let key = new_key(chrono::Utc::now(), "jpg");
    let photo = b"\xFF\xD8\xFF\xE0 a photo \xFF\xD9".to_vec();
    store.put(&key, "image/jpeg", photo.clone()).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(photo));
    assert_eq!(store.get(&new_key(chrono::Utc::now(), "png")).await.unwrap(), None, "a missing object is None");
    store.delete(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.delete(&key).await.unwrap();
    for bad in ["../../etc/passwd", "proofs/2026/11/x.jpg", "other/2026/11/0b8a4d2c-0f5e-4d43-9d1a-5c1e1b1b1b1b.jpg"] {
        assert!(store.put(bad, "image/jpeg", vec![1]).await.is_err(), "{bad}");
        assert!(store.get(bad).await.is_err(), "{bad}");
    }
}

#[tokio::test]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs moto_server")]
async fn a_missing_bucket_is_an_error_not_a_silent_loss() {
    let (_moto, endpoint) = start_moto().await;
    let store = Objects::open(&config(&endpoint, "no-such-bucket"), Path::new("/nonexistent")).unwrap();
    let key = new_key(chrono::Utc::now(), "jpg");
    assert!(store.put(&key, "image/jpeg", vec![1, 2, 3]).await.is_err());
}

#[test]
fn s3_settings_are_required_together() {
    let missing = ObjectConfig { s3_bucket: None, ..config("http://127.0.0.1:9", "b") };
    let err = Objects::open(&missing, Path::new(".")).unwrap_err().to_string();
    assert!(err.contains("WW_S3_BUCKET"), "{err}");
}
