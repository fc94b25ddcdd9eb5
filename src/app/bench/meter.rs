//! What a bench path costs this process: CPU time (user + system) and peak resident memory, read
//! from `/proc/self` (Linux; elsewhere both read as zero and the report says so).

use std::time::{Duration, Instant};

/// A point in the run: wall clock and the CPU this process has used so far.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pub at: Instant,
    pub cpu: Duration,
}

impl Mark {
    pub fn now() -> Mark {
        Mark { at: Instant::now(), cpu: cpu_time() }
    }
}

/// User + system CPU time of this process (clock ticks of `/proc/self/stat`, 10 ms each).
pub fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / CLOCK_TICKS)
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
const CLOCK_TICKS: u64 = 100;

/// The most resident memory this process has had (`VmHWM`), in MiB.
pub fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:") as f64 / 1024.0
}

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
