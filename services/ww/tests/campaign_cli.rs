//! `ww campaign check` and `ww campaign preview` as marketing runs them: on every sample, on a
//! campaign with many problems, and on an edit of a started campaign.

use std::path::{Path, PathBuf};
use std::process::Command;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/samples");

fn ww(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ww")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sample files with a campaign (the ChatCluster samples beside them are the operator's).
fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(SAMPLES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("\nkind: CouponCampaign"))
        .collect();
    assert!(files.len() >= 3, "the campaign samples were found: {files:?}");
    files.sort();
    files
}

#[test]
fn check_accepts_every_sample() {
    let files: Vec<String> = samples().iter().map(|p| p.display().to_string()).collect();
    let args: Vec<&str> = ["campaign", "check"].into_iter().chain(files.iter().map(String::as_str)).collect();
    let (ok, stdout, stderr) = ww(&args);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.ends_with(": ok")).count(), files.len(), "{stdout}");
}

#[test]
fn preview_prints_every_sample_day_by_day() {
    for file in samples() {
        let (ok, stdout, stderr) =
            ww(&["campaign", "preview", &file.display().to_string(), "--from", "2026-12-01", "--days", "3"]);
        assert!(ok, "{}: {stdout}{stderr}", file.display());
        assert!(
            stdout.contains("pre-warm") && stdout.lines().any(|l| l.starts_with("2026-12-")),
            "{}: {stdout}",
            file.display()
        );
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const CAMPAIGN: &str = "\
apiVersion: weatherwise.io/v1alpha1
kind: CouponCampaign
metadata:
  name: rainy-day-pass
  namespace: marketing
spec:
  displayName: Rainy Day Pass
  coupon: {title: Umbrella discount, benefit: 20% off an umbrella, validityDays: 7}
  schedule: {timeZone: Asia/Seoul, startDate: 2026-12-07, endDate: 2026-12-13, opensAt: \"10:00\"}
  quota: {dailyQuantity: 1000}
";

#[test]
fn check_reports_every_problem_with_its_path_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = CAMPAIGN
        .replace("endDate: 2026-12-13", "endDate: 2026-12-01")
        .replace("{dailyQuantity: 1000}", "{dailyQuantity: 1000, totalQuantity: 10}")
        .replace("name: rainy-day-pass", "name: Rainy_Day");
    let file = write(dir.path(), "bad.yaml", &bad);
    let (ok, stdout, _) = ww(&["campaign", "check", &file]);
    assert!(!ok, "{stdout}");
    for path in ["metadata.name", "spec.schedule.endDate", "spec.quota.dailyQuantity"] {
        assert!(stdout.contains(&format!("  - {path}: ")), "{path} missing:\n{stdout}");
    }
}

#[test]
fn check_against_the_live_object_refuses_what_cannot_change_once_started() {
    let dir = tempfile::tempdir().unwrap();
    let live = format!("{CAMPAIGN}status:\n  phase: Open\n  startedAt: \"2026-12-07T01:00:00Z\"\n");
    let old = write(dir.path(), "live.yaml", &live);
    let edit = write(dir.path(), "edit.yaml", &CAMPAIGN.replace("Asia/Seoul", "Asia/Tokyo"));
    let (ok, stdout, _) = ww(&["campaign", "check", &edit, "--old", &old]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("cannot change once the campaign has started"), "{stdout}");
    let more = write(dir.path(), "more.yaml", &CAMPAIGN.replace("dailyQuantity: 1000", "dailyQuantity: 2000"));
    let (ok, stdout, _) = ww(&["campaign", "check", &more, "--old", &old]);
    assert!(ok, "a quantity may change: {stdout}");
}
