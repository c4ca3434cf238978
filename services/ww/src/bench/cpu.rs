//! Where a benchmark's CPU went: CPU seconds per process over a window, from `/proc/<pid>/stat`
//! (Linux). A benchmark on a 2-core machine shares it with the broker, the databases and its own
//! load generator; the split says which of them the figures are bound by.

use std::collections::BTreeMap;

/// CPU time of every process at one instant, in clock ticks, by pid (with its name).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    ticks: BTreeMap<u32, (String, u64)>,
    at: Option<std::time::Instant>,
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
const TICKS_PER_S: f64 = 100.0;

/// The `comm` and utime + stime of a `/proc/<pid>/stat` line.
fn parse_stat(line: &str) -> Option<(String, u64)> {
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split at the last ')'.
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = line.get(close + 2..)?.split_whitespace().collect();
    // After the comm: state is field 3 of the whole line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

impl Snapshot {
    /// Every process readable now (none off Linux).
    pub fn take() -> Self {
        let mut ticks = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
                if let Some(parsed) =
                    std::fs::read_to_string(entry.path().join("stat")).ok().as_deref().and_then(parse_stat)
                {
                    ticks.insert(pid, parsed);
                }
            }
        }
        Self { ticks, at: Some(std::time::Instant::now()) }
    }

    /// Cores used between `self` and `later` per label: `labels` names pids of interest (the
    /// benchmark's children, itself); everything else is grouped by process name, and names
    /// under 2% of a core are left out.
    pub fn cores_until(&self, later: &Snapshot, labels: &BTreeMap<u32, String>) -> Vec<(String, f64)> {
        let seconds = match (self.at, later.at) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64().max(1e-3),
            _ => return Vec::new(),
        };
        let mut by_label: BTreeMap<String, u64> = BTreeMap::new();
        for (pid, (comm, after)) in &later.ticks {
            let before = self.ticks.get(pid).filter(|(c, _)| c == comm).map_or(0, |(_, t)| *t);
            let used = after.saturating_sub(before);
            if used == 0 {
                continue;
            }
            let label = labels.get(pid).cloned().unwrap_or_else(|| comm.clone());
            *by_label.entry(label).or_default() += used;
        }
        let mut cores: Vec<(String, f64)> = by_label
            .into_iter()
            .map(|(label, t)| (label, t as f64 / TICKS_PER_S / seconds))
            .filter(|(_, c)| *c >= 0.02)
            .collect();
        cores.sort_by(|a, b| b.1.total_cmp(&a.1));
        cores
    }
}

/// `name 0.84, other 0.31, …` for a report line.
pub fn describe(cores: &[(String, f64)]) -> String {
    let total: f64 = cores.iter().map(|(_, c)| c).sum();
    let parts: Vec<String> = cores.iter().map(|(l, c)| format!("{l} {c:.2}")).collect();
    format!("{} (total {total:.2} cores)", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_name_and_cpu_ticks() {
        let line = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1000 0 0";
        assert_eq!(parse_stat(line), Some(("tokio (rt) w".to_owned(), 325)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_uses_cpu_that_a_snapshot_sees() {
        let before = Snapshot::take();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = Snapshot::take();
        let me = std::process::id();
        let labels = BTreeMap::from([(me, "me".to_owned())]);
        let cores = before.cores_until(&after, &labels);
        let mine = cores.iter().find(|(l, _)| l == "me").map(|(_, c)| *c).unwrap_or(0.0);
        assert!(mine > 0.3, "a busy loop shows as most of a core: {cores:?}");
    }
}
