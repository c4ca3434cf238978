//! `ww dev`: every service in one process on embedded backends — SQLite files, the
//! SQLite event log and in-memory counters under one data directory — so the whole app
//! runs with one command and keeps its data across restarts.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine;
use platform::auth::JwtKeys;
use platform::clock::Clock;
use platform::config::KeyRing;
use platform::counters::Counters;
use platform::db::DatabaseUrl;
use platform::events::{EmbeddedBus, EventBus};
use platform::http::{ForwardedPolicy, shutdown_signal};
use platform::service::Context;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app;
use crate::cli::{DevArgs, ServiceConfig, ServiceName};

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    check_listen(&args)?;
    platform::telemetry::init(args.log_format);
    let stop = shutdown_signal();
    let mut ctx = context(&args.data_dir, stop.clone()).await?;
    if let Some(policy) = &args.http.trusted_proxies {
        ctx.forwarded = Arc::new(policy.clone());
    }
    let mut services = ServiceName::all();
    let mut suggested = None;
    // Campaigns come from YAML in dev: announce them as their owner would, then issue them.
    match coupon::load_campaigns(&args.services_config.issuer) {
        Ok(campaigns) => {
            suggested = suggest(&campaigns, chrono::Utc::now());
            coupon::publish_definitions(&ctx.bus, &campaigns, chrono::Utc::now().timestamp_millis()).await?;
            let names: Vec<&str> = campaigns.iter().map(|c| c.name()).collect();
            tracing::info!(campaigns = ?names, "loaded campaigns from {}", args.services_config.issuer.campaigns_dir.display());
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "no campaigns loaded; coupon issuing is off");
            services.retain(|s| *s != ServiceName::CouponIssuer);
        }
    }
    let config =
        ServiceConfig { embedded: true, data_dir: Some(args.data_dir.clone()), ..args.services_config.clone() };
    let app = app::build(&services, &ctx, &config, &args.http.settings()).await?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("{}", banner(&format!("http://{addr}"), &args.data_dir, suggested.as_ref()));
    app.run(listener, stop).await
}

/// `ww dev` mounts dev-only endpoints (anyone may verify a mission) and keeps its signing
/// key in a file: it must not be reachable from other machines by accident.
pub fn check_listen(args: &DevArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() && !args.allow_non_loopback {
        anyhow::bail!(
            "`ww dev` listens on loopback only ({} is not): it serves dev-only endpoints such as \
             /api/dev/missions/verify. Use --listen 127.0.0.1:PORT, or pass --allow-non-loopback \
             (WW_DEV_ALLOW_NON_LOOPBACK=true) if you really mean to expose it",
            args.listen
        );
    }
    Ok(())
}

/// The embedded backends, all kept under `data_dir`.
pub async fn context(data_dir: &Path, stop: watch::Receiver<bool>) -> anyhow::Result<Context> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let secret = signing_secret(data_dir)?;
    let keys = JwtKeys::new(&KeyRing(vec![("dev".to_owned(), secret)]), None, "weatherwise")?;
    let bus = EmbeddedBus::open(data_dir).await.context("cannot open the embedded event log")?;
    Ok(Context {
        database: DatabaseUrl::SqliteDir(data_dir.to_path_buf()),
        db_max_connections: 8,
        counters: Counters::memory(),
        bus: EventBus::Embedded(Arc::new(bus)),
        keys: Arc::new(keys),
        clock: Clock::System,
        forwarded: Arc::new(ForwardedPolicy::none()),
        stop,
    })
}

/// The dev signing key: generated once, kept in the data directory so tokens survive
/// restarts.
fn signing_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let trimmed = existing.trim();
        if trimmed.len() >= 32 {
            return Ok(trimmed.as_bytes().to_vec());
        }
    }
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    std::fs::write(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(secret.into_bytes())
}

/// The campaign the banner suggests trying: one open now, else the one opening soonest
/// within a day; with a word on when.
fn suggest(campaigns: &[campaign::Campaign], now: chrono::DateTime<chrono::Utc>) -> Option<(String, String)> {
    if let Some(open) = campaigns.iter().find(|c| c.status_at(now).phase == campaign::Phase::Open) {
        return Some((open.name().to_owned(), "open now".to_owned()));
    }
    campaigns
        .iter()
        .filter_map(|c| c.next_opening_after(now).map(|t| (t, c)))
        .filter(|(t, _)| *t - now < chrono::TimeDelta::hours(24))
        .min_by_key(|(t, _)| *t)
        .map(|(t, c)| (c.name().to_owned(), format!("opens at {}", t.to_rfc3339())))
}

fn banner(base: &str, data_dir: &Path, campaign: Option<&(String, String)>) -> String {
    let issue = match campaign {
        Some((name, when)) => format!(
            "curl -s -X POST {base}/api/campaigns/{name}/issue -H \"authorization: Bearer $ACCESS_TOKEN\"   # {when}"
        ),
        None => "# no sample campaign opens within a day: edit the dates in config/samples/*.yaml".to_owned(),
    };
    format!(
        r#"
WeatherWise (dev) is running at {base}
  data: {data}  (SQLite, embedded event log; kept across restarts)
  API:  {base}/openapi.json    health: {base}/readyz    metrics: {base}/metrics

Try it:
  curl -s -X POST {base}/api/auth/signup -H 'content-type: application/json' \
       -d '{{"email":"minji@example.com","password":"rainy-day-umbrella","nickname":"minji"}}'
  curl -s -X POST {base}/api/auth/login -H 'content-type: application/json' \
       -d '{{"email":"minji@example.com","password":"rainy-day-umbrella"}}'
  curl -s {base}/api/users/me -H "authorization: Bearer $ACCESS_TOKEN"

Coupons (campaigns from config/samples):
  curl -s {base}/api/coupons/campaigns
  curl -s -X POST {base}/api/dev/missions/verify -H "authorization: Bearer $ACCESS_TOKEN"   # dev only
  {issue}
  curl -s {base}/api/coupons/me -H "authorization: Bearer $ACCESS_TOKEN"

Stop with Ctrl-C.
"#,
        data = data_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn samples() -> Vec<campaign::Campaign> {
        campaign::load_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/samples"))).expect("samples")
    }

    #[test]
    fn the_banner_suggests_a_campaign_open_today_or_none() {
        let at = |t: &str| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let (name, when) = suggest(&samples(), at("2026-11-25T12:00:00Z")).expect("the demo runs all year");
        assert_eq!((name.as_str(), when.as_str()), ("daily-demo", "open now"));
        assert_eq!(suggest(&samples(), at("2028-06-01T12:00:00Z")), None, "every sample has ended");
        let shown = banner("http://127.0.0.1:8080", Path::new(".ww-data"), None);
        assert!(shown.contains("edit the dates"), "{shown}");
    }

    fn dev_args(args: &[&str]) -> DevArgs {
        let cli = crate::cli::Cli::try_parse_from([&["ww", "dev"], args].concat()).expect("parses");
        match cli.command {
            crate::cli::Command::Dev(args) => *args,
            _ => unreachable!("parsed `ww dev`"),
        }
    }

    #[test]
    fn dev_listens_on_loopback_unless_told_otherwise() {
        assert!(check_listen(&dev_args(&[])).is_ok());
        assert!(check_listen(&dev_args(&["--listen", "[::1]:8080"])).is_ok());
        let refused = check_listen(&dev_args(&["--listen", "0.0.0.0:8080"])).unwrap_err().to_string();
        assert!(refused.contains("--allow-non-loopback") && refused.contains("/api/dev/missions/verify"), "{refused}");
        assert!(check_listen(&dev_args(&["--listen", "0.0.0.0:8080", "--allow-non-loopback"])).is_ok());
    }
}
