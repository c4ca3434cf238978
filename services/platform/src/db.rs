//! SQL storage through sqlx's `Any` driver: PostgreSQL in production (one schema per
//! service, so services share a server but not tables), SQLite in the embedded mode (one
//! file per service under a directory). Each service's numbered migrations run at start.
//!
//! Portable SQL only: TEXT ids, BIGINT epoch-millisecond timestamps, `$n` bind parameters,
//! `ON CONFLICT`, `RETURNING`.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

use crate::http::ReadinessCheck;

/// Where the services keep their tables.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseConfig {
    /// `postgres://user@host:5432/db` (each service uses its own schema in it) or
    /// `sqlite://DIR` (each service uses the file DIR/<service>.db).
    #[arg(long, env = "WW_DATABASE_URL", value_parser = parse_database_url, hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,
    /// Connections each service's pool may open.
    #[arg(long, env = "WW_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
}

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    SqliteDir(PathBuf),
}

fn parse_database_url(raw: &str) -> Result<DatabaseUrl, String> {
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        Ok(DatabaseUrl::Postgres(raw.to_owned()))
    } else if let Some(dir) = raw.strip_prefix("sqlite://") {
        if dir.is_empty() {
            return Err("sqlite:// needs a directory, e.g. sqlite://./data".to_owned());
        }
        Ok(DatabaseUrl::SqliteDir(PathBuf::from(dir)))
    } else {
        Err("expected a postgres:// or sqlite:// URL".to_owned())
    }
}

/// Which SQL dialect a pool speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A service's connection pool.
#[derive(Debug, Clone)]
pub struct Database {
    pub pool: AnyPool,
    pub dialect: Dialect,
    pub service: &'static str,
}

impl Database {
    /// Opens `service`'s pool (creating its schema or file) and runs its migrations.
    pub async fn open(
        url: &DatabaseUrl,
        service: &'static str,
        max_connections: u32,
        migrator: &Migrator,
    ) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let db = match url {
            DatabaseUrl::Postgres(url) => {
                // Replicas starting together against an empty database: schema creation
                // and migrations run one process at a time, under a session advisory lock
                // held on a throwaway connection (`CREATE SCHEMA IF NOT EXISTS` and the
                // migrations table otherwise race into unique violations).
                let mut admin = AnyConnection::connect(url).await?;
                let key = advisory_key(service);
                sqlx::query("SELECT pg_advisory_lock($1)").bind(key).execute(&mut admin).await?;
                let opened = Self::open_postgres(url, service, max_connections, migrator).await;
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)").bind(key).execute(&mut admin).await;
                let _ = admin.close().await;
                let db = opened?;
                unlocked?;
                return Ok(db);
            }
            DatabaseUrl::SqliteDir(dir) => {
                std::fs::create_dir_all(dir)?;
                let file = dir.join(format!("{service}.db"));
                let url = format!("sqlite://{}?mode=rwc", file.display());
                // One connection: SQLite allows one writer, and a deferred transaction
                // that reads then writes fails with SQLITE_BUSY when another connection
                // wrote in between (busy_timeout does not help). Serialising on one
                // connection is correct and fast enough for the embedded mode.
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?;
                Database { pool, dialect: Dialect::Sqlite, service }
            }
        };
        migrator.run(&db.pool).await?;
        Ok(db)
    }

    async fn open_postgres(
        url: &str,
        service: &'static str,
        max_connections: u32,
        migrator: &Migrator,
    ) -> anyhow::Result<Self> {
        let admin = AnyPoolOptions::new().max_connections(1).connect(url).await?;
        admin.execute(format!("CREATE SCHEMA IF NOT EXISTS \"{service}\"").as_str()).await?;
        admin.close().await;
        // Every pooled connection's search_path is pinned to the service's schema.
        let set_path = format!("SET search_path TO \"{service}\"");
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(set_path.as_str()).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let db = Database { pool, dialect: Dialect::Postgres, service };
        migrator.run(&db.pool).await?;
        Ok(db)
    }

    pub fn readiness(&self) -> ReadinessCheck {
        let pool = self.pool.clone();
        ReadinessCheck::new(format!("database:{}", self.service), move || {
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()).map_err(|e| e.to_string()) }
        })
    }
}

/// The advisory lock key of a service's schema: stable across processes and releases
/// (FNV-1a of a fixed tag and the schema name).
fn advisory_key(service: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "weatherwise.schema:".bytes().chain(service.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

impl DatabaseUrl {
    /// The URL as configured, password included, for handing to another process (its
    /// `Display` hides the password).
    pub fn url_with_secrets(&self) -> String {
        match self {
            DatabaseUrl::Postgres(url) => url.clone(),
            DatabaseUrl::SqliteDir(dir) => format!("sqlite://{}", dir.display()),
        }
    }
}

/// Shows the URL with its password replaced by `***`: it ends up in errors and logs.
impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Postgres(url) => f.write_str(&crate::config::redact_url(url)),
            DatabaseUrl::SqliteDir(dir) => write!(f, "sqlite://{}", dir.display()),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The `VALUES` rows of a multi-row insert: `rows` tuples of `columns` bind parameters each,
/// numbered from `$1` (portable: PostgreSQL and SQLite both take `$n`).
pub fn values_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let marks: Vec<String> = (1..=columns).map(|c| format!("${}", r * columns + c)).collect();
            format!("({})", marks.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates the PostgreSQL database `url` names when it does not exist (tests and
/// benchmarks; production databases are provisioned by their operators).
pub async fn create_postgres_database(url: &str) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let (server, name) = url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("no database name in {}", crate::config::redact_url(url)))?;
    let name = name.split('?').next().unwrap_or(name);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        anyhow::bail!("database name `{name}` must be letters, digits and underscores");
    }
    let admin = AnyPoolOptions::new().max_connections(1).connect(&format!("{server}/postgres")).await?;
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1").bind(name).fetch_optional(&admin).await?;
    if exists.is_none()
        && let Err(e) = admin.execute(format!("CREATE DATABASE \"{name}\"").as_str()).await
    {
        // Another process may have created it between the check and here.
        let raced =
            sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1").bind(name).fetch_optional(&admin).await?;
        if raced.is_none() {
            return Err(e.into());
        }
    }
    admin.close().await;
    Ok(())
}

#[cfg(test)]
mod values_tests {
    #[test]
    fn values_rows_number_every_parameter_once() {
        assert_eq!(super::values_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::values_rows(0, 3), "");
    }
}
