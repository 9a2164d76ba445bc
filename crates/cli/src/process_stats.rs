//! The process's own figures, read from Linux's `/proc` (the ones Prometheus client libraries
//! export as `process_*`): resident and virtual memory, CPU time, start time, open and
//! allowed file descriptors. Elsewhere reading fails and no figures are given.

use std::io;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`). It is 100 on every
/// architecture Linux exports to user space; Prometheus's own `procfs` library takes the same
/// constant instead of calling `sysconf(_SC_CLK_TCK)`.
const USER_HZ: f64 = 100.0;

/// One reading of the process's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// Resident memory (`VmRSS`), bytes.
    pub resident_memory_bytes: u64,
    /// Virtual memory (`VmSize`), bytes.
    pub virtual_memory_bytes: u64,
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// When the process started, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// File descriptors open now.
    pub open_fds: u64,
    /// The soft limit on open file descriptors (`Max open files`); `None` when unlimited.
    pub max_fds: Option<u64>,
}

/// Reads this process's figures from `/proc/self` (and the boot time from `/proc/stat`).
pub fn read() -> io::Result<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let boot = std::fs::read_to_string("/proc/stat")?;
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let open_fds = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    let times = parse_stat(&stat).ok_or_else(|| invalid("/proc/self/stat"))?;
    let boot_time = parse_boot_time(&boot).ok_or_else(|| invalid("/proc/stat"))?;
    Ok(ProcessStats {
        resident_memory_bytes: status_kib(&status, "VmRSS").ok_or_else(|| invalid("VmRSS"))? * 1024,
        virtual_memory_bytes: status_kib(&status, "VmSize").ok_or_else(|| invalid("VmSize"))?
            * 1024,
        cpu_seconds: (times.utime + times.stime) as f64 / USER_HZ,
        start_time_seconds: boot_time as f64 + times.starttime as f64 / USER_HZ,
        // `read_dir` holds one descriptor of its own while it counts.
        open_fds: open_fds.saturating_sub(1),
        max_fds: parse_max_open_files(&limits),
    })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {what}"))
}

/// The CPU and start times of `/proc/<pid>/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatTimes {
    utime: u64,
    stime: u64,
    starttime: u64,
}

/// Fields 14 (`utime`), 15 (`stime`) and 22 (`starttime`) of `/proc/<pid>/stat`
/// (proc(5)). The command name (field 2) is in parentheses and may hold spaces and `)`, so
/// the fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<StatTimes> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (`state`) is the first.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatTimes {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
    })
}

/// `btime` of `/proc/stat`: when the system booted, seconds since the Unix epoch.
fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `Name:   123 kB` line of `/proc/<pid>/status`, in KiB.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// The soft limit of the `Max open files` line of `/proc/<pid>/limits`.
fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a `)` in it (proc(5) allows both).
        let stat = "4242 (acr (we) bhook) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    731 269 0 0 20 0 9 0 123456 1048576000 4000 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(StatTimes {
                utime: 731,
                stime: 269,
                starttime: 123456
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert_eq!(parse_stat("no name"), None);
    }

    #[test]
    fn status_boot_time_and_limits() {
        let status =
            "Name:\tacr-webhook\nVmPeak:\t  200000 kB\nVmSize:\t  123456 kB\nVmRSS:\t   16384 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(16384));
        assert_eq!(status_kib(status, "VmSize"), Some(123456));
        assert_eq!(status_kib(status, "VmSwap"), None);
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1796000000\nprocesses 9\n"),
            Some(1_796_000_000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_plausibly() {
        let stats = read().unwrap();
        assert!(stats.resident_memory_bytes > 1 << 20, "{stats:?}");
        assert!(
            stats.virtual_memory_bytes >= stats.resident_memory_bytes,
            "{stats:?}"
        );
        assert!(stats.open_fds >= 3, "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Started in the past, and not before the test binary was built.
        assert!(stats.start_time_seconds <= now + 1.0, "{stats:?}");
        assert!(stats.start_time_seconds > now - 24.0 * 3600.0, "{stats:?}");
    }
}
