//! What the benchmark reads about a process from Linux's `/proc`: CPU seconds (user +
//! system, all threads) and peak resident memory (`VmHWM`), which can be reset so that a
//! peak belongs to one measured run.

use anyhow::{anyhow, Context, Result};

/// CPU time a process has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    /// User seconds.
    pub user: f64,
    /// System seconds.
    pub system: f64,
}

impl Cpu {
    /// User + system seconds.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }

    /// The CPU time used between `earlier` and `self`.
    pub fn since(&self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime of `pid` (fields 14 and 15 of `/proc/<pid>/stat`), all threads included.
pub fn cpu(pid: u32) -> Result<Cpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let field = |i: usize| -> Result<f64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|t| t as f64 / clock_ticks())
            .ok_or_else(|| anyhow!("no field {i} in /proc/{pid}/stat"))
    };
    Ok(Cpu {
        user: field(14)?,
        system: field(15)?,
    })
}

/// Peak resident set size in KiB (`VmHWM` in `/proc/<pid>/status`).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM in /proc/{pid}/status"))
}

/// Resets the peak RSS of `pid` to its current RSS (`echo 5 > /proc/<pid>/clear_refs`).
/// False when the kernel or the permissions do not allow it: the peak then covers the
/// whole life of the process.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), b"5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let before = cpu(pid).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = cpu(pid).unwrap();
        assert!(after.total() >= before.total());
        assert!(peak_rss_kib(pid).unwrap() > 0);
    }
}
