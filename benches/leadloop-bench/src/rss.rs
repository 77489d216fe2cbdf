//! Peak resident memory, for the benchmark's memory figures.
//!
//! Linux keeps the peak (`VmHWM`, "high water mark") per process and offers no way to reset
//! it, so a phase's peak cannot be isolated inside a process that already did other work
//! (generating the corpus alone takes tens of MB). The bench therefore runs each measured
//! phase in a fresh child process (`leadloop-bench ingest-child ...`), which reads its own
//! `VmHWM` just before exiting and prints it; see `main.rs`. The `loop` bench runs the
//! `leadloop` daemon itself as a child and reads its `VmHWM` from `/proc/PID/status` before
//! stopping it.

use anyhow::{Context, Result, anyhow};

/// Peak resident set size of the current process in KiB (`VmHWM`).
pub fn peak_rss_kib() -> Result<u64> {
    status_field_kib("VmHWM")
}

/// Current resident set size of the current process in KiB (`VmRSS`).
pub fn current_rss_kib() -> Result<u64> {
    status_field_kib("VmRSS")
}

/// Peak resident set size of another process in KiB (its `VmHWM`), e.g. a daemon the bench
/// started; read it before the process exits.
pub fn peak_rss_kib_of(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_field_kib(&status, "VmHWM").ok_or_else(|| anyhow!("no VmHWM line in {path}"))
}

/// CPU time (user + system) this process has used so far, in seconds, from `/proc/self/stat`.
pub fn cpu_seconds() -> Result<f64> {
    cpu_seconds_at("/proc/self/stat")
}

/// CPU time (user + system) another process has used so far, in seconds.
pub fn cpu_seconds_of(pid: u32) -> Result<f64> {
    cpu_seconds_at(&format!("/proc/{pid}/stat"))
}

fn cpu_seconds_at(path: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .ok_or_else(|| anyhow!("short {path}"))?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    // USER_HZ is 100 on every Linux configuration we run on.
    Ok(ticks / 100.0)
}

fn status_field_kib(field: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    parse_field_kib(&status, field).ok_or_else(|| anyhow!("no {field} line in /proc/self/status"))
}

/// Parses `VmHWM:\t  12345 kB`.
fn parse_field_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_peak() {
        assert_eq!(
            parse_field_kib("VmPeak:\t 100 kB\nVmHWM:\t   2048 kB\n", "VmHWM"),
            Some(2048)
        );
        let peak = peak_rss_kib().unwrap();
        assert!(peak > 0 && peak >= current_rss_kib().unwrap() / 2);
    }
}
