//! `ww campaign check FILE…` and `ww campaign preview FILE`: what the API server and the operator
//! will say about a `CouponCampaign` before it is applied, and what the cluster will do on each
//! coming day. Both use the code the operator runs (`campaign::check`, `Campaign::plan_at`,
//! `Campaign::preview`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use campaign::check::{Problem, check};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::Subcommand;
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Validate CouponCampaign YAML exactly as the API server (schema and CEL rules) and the
    /// operator (campaign rules) will, printing every problem at once with its field path.
    /// Exits 1 when any campaign has a problem.
    Check(CheckArgs),
    /// Print, for each coming campaign day, when the issuer is pre-warmed, when the window opens
    /// and closes, when the workload goes back to idle, the day's quantity and daylight-saving
    /// notes, in the campaign's time zone and in UTC.
    Preview(PreviewArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// YAML files; each may hold several documents, and other kinds are passed over.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The campaigns as they are now (e.g. `kubectl get cc -o yaml`), to check the changes
    /// against the rules that apply once a campaign has started. Matched by namespace and name.
    #[arg(long)]
    pub old: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    pub file: PathBuf,
    /// How many campaign days to show.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=366))]
    pub days: u16,
    /// The first day to show (YYYY-MM-DD); default: today in the campaign's time zone.
    #[arg(long)]
    pub from: Option<NaiveDate>,
}

pub fn run(cmd: CampaignCommand) -> anyhow::Result<()> {
    match cmd {
        CampaignCommand::Check(args) => {
            let (report, failed) = check_files(&args.files, args.old.as_deref())?;
            print!("{report}");
            if failed {
                anyhow::bail!("some campaigns have problems");
            }
            Ok(())
        }
        CampaignCommand::Preview(args) => {
            print!("{}", preview_file(&args.file, args.days.into(), args.from, Utc::now())?);
            Ok(())
        }
    }
}

/// Every `CouponCampaign` document of `path`, numbered from 1 as editors count them.
fn campaigns_in(path: &Path) -> anyhow::Result<Vec<(usize, Value)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    campaign::resources_in_yaml(&text).with_context(|| format!("in {}", path.display()))
}

fn key(object: &Value) -> (String, String) {
    let meta =
        |field: &str| object.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).unwrap_or("").to_owned();
    (meta("namespace"), meta("name"))
}

/// The report `check` prints, and whether any campaign failed.
pub fn check_files(files: &[PathBuf], old: Option<&Path>) -> anyhow::Result<(String, bool)> {
    let old: Vec<Value> = match old {
        Some(path) => {
            let mut objects: Vec<Value> = campaigns_in(path)?.into_iter().map(|(_, v)| v).collect();
            // `kubectl get -o yaml` of several objects is one List.
            let text = std::fs::read_to_string(path)?;
            if let Ok(list) = serde_yaml::from_str::<Value>(&text)
                && let Some(items) = list.get("items").and_then(Value::as_array)
            {
                objects.extend(items.iter().filter(|i| i["kind"] == campaign::KIND).cloned());
            }
            objects
        }
        None => Vec::new(),
    };
    let mut report = String::new();
    let mut failed = false;
    let mut seen = 0;
    for file in files {
        for (document, object) in campaigns_in(file)? {
            seen += 1;
            let previous = old.iter().find(|o| key(o) == key(&object));
            let problems: Vec<Problem> = check(&object, previous);
            let (_, name) = key(&object);
            let place = format!("{}: document {document} (`{name}`)", file.display());
            if problems.is_empty() {
                let _ = writeln!(report, "{place}: ok");
            } else {
                failed = true;
                let _ = writeln!(report, "{place}: {} problem(s)", problems.len());
                for p in problems {
                    let _ = writeln!(report, "  - {p}");
                }
            }
        }
    }
    if seen == 0 {
        anyhow::bail!(
            "no CouponCampaign found in {}",
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok((report, failed))
}

/// The preview of every campaign in `file`, starting `from` (default: the campaign's local today
/// at `now`).
pub fn preview_file(file: &Path, days: usize, from: Option<NaiveDate>, now: DateTime<Utc>) -> anyhow::Result<String> {
    let mut out = String::new();
    let found = campaign::load_file(file)?;
    if found.is_empty() {
        anyhow::bail!("no CouponCampaign found in {}", file.display());
    }
    for c in found {
        let spec = c.spec();
        let tz: Tz = c.tz();
        let replicas = spec.workload.replicas;
        let _ = writeln!(
            out,
            "{} — {} ({}), {} a day{}, one person at most {} over the campaign",
            c.name(),
            spec.display_name,
            spec.schedule.time_zone,
            spec.quota.daily_quantity,
            spec.quota.total_quantity.map(|t| format!(", {t} in all")).unwrap_or_default(),
            spec.quota.per_user,
        );
        let _ = writeln!(
            out,
            "issuer: {} replica(s) idle, {} from pre-warm ({} s before opening) to {} s after closing, up to {} under load",
            replicas.idle,
            replicas.min,
            spec.workload.prewarm_seconds,
            campaign::plan::COOLDOWN.num_seconds(),
            replicas.max,
        );
        let plan = c.plan_at(now, campaign::plan::Observed::default());
        let _ = writeln!(
            out,
            "now: {}{}",
            plan.phase,
            plan.next_change.map(|t| format!(", next change {}", both(t, tz))).unwrap_or_default()
        );
        if spec.suspend {
            let _ = writeln!(out, "suspended: nothing is handed out and no issuer runs until spec.suspend is unset");
        }
        let start = from.unwrap_or_else(|| c.day_of(now));
        let preview = c.preview(start, days);
        if preview.is_empty() {
            let _ = writeln!(
                out,
                "no campaign day on or after {start} (the campaign runs {} to {})\n",
                spec.schedule.start_date, spec.schedule.end_date
            );
            continue;
        }
        let _ = writeln!(
            out,
            "{:<10}  {:<24}  {:<24}  {:<24}  {:<24}  {:>9}",
            "day", "pre-warm", "opens", "closes", "back to idle", "quantity"
        );
        for d in preview {
            let _ = writeln!(
                out,
                "{:<10}  {:<24}  {:<24}  {:<24}  {:<24}  {:>9}",
                d.day.to_string(),
                both(d.prewarm, tz),
                both(d.opening, tz),
                both(d.closing, tz),
                both(d.idle, tz),
                d.quantity
            );
            for note in d.notes {
                let _ = writeln!(out, "{:<10}  note: {note}", "");
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// `MM-DD HH:MM (HH:MMZ)`: local wall-clock time, and UTC.
fn both(t: DateTime<Utc>, tz: Tz) -> String {
    let local = t.with_timezone(&tz);
    format!("{} ({}Z)", local.format("%m-%d %H:%M"), t.format("%H:%M"))
}
