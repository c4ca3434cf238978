//! Where proof photos are kept: a local directory (the embedded mode; a pod's disk dies with
//! the pod) or S3-compatible object storage (production: AWS S3, MinIO, Ceph RGW, R2 …). Keys
//! are generated here (`proofs/YYYY/MM/<uuid>.<ext>`), never taken from a client, so no name a
//! client sends can reach outside the store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

/// Settings of the proof store.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Mission proofs")]
pub struct ObjectConfig {
    /// Where proof photos go: `s3` (with the `WW_S3_*` settings) or `local` (a directory;
    /// `ww dev` keeps them under its data directory).
    #[arg(long, env = "WW_PROOF_STORE", value_enum, default_value = "local")]
    pub proof_store: StoreKind,
    /// The directory of the `local` store (default: `proofs` in the working directory, or in
    /// `ww dev`'s data directory).
    #[arg(long, env = "WW_PROOF_DIR")]
    pub proof_dir: Option<PathBuf>,
    /// The S3 endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://minio:9000`.
    #[arg(long, env = "WW_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "WW_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    #[arg(long, env = "WW_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    #[arg(long, env = "WW_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "WW_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Address buckets as `host/bucket/key` (MinIO, most self-hosted stores) instead of
    /// `bucket.host/key`.
    #[arg(long, env = "WW_S3_PATH_STYLE", default_value_t = false)]
    pub s3_path_style: bool,
}

impl Default for ObjectConfig {
    fn default() -> Self {
        Self {
            proof_store: StoreKind::Local,
            proof_dir: None,
            s3_endpoint: None,
            s3_bucket: None,
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_path_style: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Local,
    S3,
}

#[derive(Debug)]
pub enum Objects {
    Local(PathBuf),
    S3(S3),
}

#[derive(Debug)]
pub struct S3 {
    bucket: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
    client: reqwest::Client,
}

/// How long a signed request stays valid (it is used at once).
const SIGNED_FOR: Duration = Duration::from_secs(60);

/// A new object key for a proof taken at `at`.
pub fn new_key(at: DateTime<Utc>, extension: &str) -> String {
    format!("proofs/{:04}/{:02}/{}.{extension}", at.year(), at.month(), Uuid::new_v4())
}

/// Keys this service generates, and nothing else (a stored key is checked before use).
pub fn is_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    matches!(parts.as_slice(), ["proofs", y, m, name]
        if y.len() == 4 && m.len() == 2 && y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
            && name.split_once('.').is_some_and(|(id, ext)| Uuid::parse_str(id).is_ok() && matches!(ext, "jpg" | "png" | "webp")))
}

impl Objects {
    pub fn open(config: &ObjectConfig, default_dir: &Path) -> anyhow::Result<Objects> {
        Ok(match config.proof_store {
            StoreKind::Local => Objects::Local(config.proof_dir.clone().unwrap_or_else(|| default_dir.to_owned())),
            StoreKind::S3 => {
                let need = |v: &Option<String>, name: &str| {
                    v.clone().ok_or_else(|| anyhow::anyhow!("WW_PROOF_STORE=s3 needs {name}"))
                };
                let endpoint = need(&config.s3_endpoint, "WW_S3_ENDPOINT")?;
                let style =
                    if config.s3_path_style { rusty_s3::UrlStyle::Path } else { rusty_s3::UrlStyle::VirtualHost };
                let bucket = rusty_s3::Bucket::new(
                    endpoint.parse().map_err(|e| anyhow::anyhow!("WW_S3_ENDPOINT: {e}"))?,
                    style,
                    need(&config.s3_bucket, "WW_S3_BUCKET")?,
                    config.s3_region.clone(),
                )?;
                let credentials = rusty_s3::Credentials::new(
                    need(&config.s3_access_key_id, "WW_S3_ACCESS_KEY_ID")?,
                    need(&config.s3_secret_access_key, "WW_S3_SECRET_ACCESS_KEY")?,
                );
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .timeout(Duration::from_secs(20))
                    .build()?;
                Objects::S3(S3 { bucket, credentials, client })
            }
        })
    }

    pub async fn put(&self, key: &str, content_type: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        anyhow::ensure!(is_key(key), "not a proof key: {key}");
        match self {
            Objects::Local(dir) => {
                let path = dir.join(key);
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                // Written aside and renamed: a reader never sees half a file.
                let partial = path.with_extension("partial");
                tokio::fs::write(&partial, &bytes).await?;
                tokio::fs::rename(&partial, &path).await?;
            }
            Objects::S3(s3) => {
                use rusty_s3::S3Action as _;
                let url = s3.bucket.put_object(Some(&s3.credentials), key).sign(SIGNED_FOR);
                let response =
                    s3.client.put(url).header(reqwest::header::CONTENT_TYPE, content_type).body(bytes).send().await?;
                anyhow::ensure!(response.status().is_success(), "S3 PUT {key}: {}", response.status());
            }
        }
        Ok(())
    }

    /// The object's bytes; `None` when there is none under `key`.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        anyhow::ensure!(is_key(key), "not a proof key: {key}");
        match self {
            Objects::Local(dir) => match tokio::fs::read(dir.join(key)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Objects::S3(s3) => {
                use rusty_s3::S3Action as _;
                let url = s3.bucket.get_object(Some(&s3.credentials), key).sign(SIGNED_FOR);
                let response = s3.client.get(url).send().await?;
                if response.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                anyhow::ensure!(response.status().is_success(), "S3 GET {key}: {}", response.status());
                Ok(Some(response.bytes().await?.to_vec()))
            }
        }
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        anyhow::ensure!(is_key(key), "not a proof key: {key}");
        match self {
            Objects::Local(dir) => match tokio::fs::remove_file(dir.join(key)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Objects::S3(s3) => {
                use rusty_s3::S3Action as _;
                let url = s3.bucket.delete_object(Some(&s3.credentials), key).sign(SIGNED_FOR);
                let response = s3.client.delete(url).send().await?;
                anyhow::ensure!(
                    response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND,
                    "S3 DELETE {key}: {}",
                    response.status()
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_generated_keys_are_keys() {
        let key = new_key(Utc::now(), "jpg");
        assert!(is_key(&key), "{key}");
        for bad in [
            "../etc/passwd",
            "proofs/2026/11/../../x.jpg",
            "proofs/2026/11/not-a-uuid.jpg",
            "/proofs/2026/11/6f1c1d2e-0000-4000-8000-000000000000.jpg",
            "proofs/2026/11/6f1c1d2e-0000-4000-8000-000000000000.svg",
            "proofs/26/11/6f1c1d2e-0000-4000-8000-000000000000.jpg",
        ] {
            assert!(!is_key(bad), "{bad}");
        }
    }
}
