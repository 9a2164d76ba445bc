//! One measured load run, whoever produced it (wrk or the bare-write client).

use serde_json::Value;

/// Latency in microseconds, counts and the process cost of one run.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Requests completed in the measured window.
    pub requests: u64,
    /// Length of the measured window, seconds.
    pub seconds: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Largest latency, µs.
    pub max_us: f64,
    /// Non-2xx answers plus connect, read, write and timeout errors.
    pub errors: u64,
    /// CPU seconds (user + system) of the measured process over the window.
    pub cpu_seconds: Option<f64>,
    /// Peak RSS of the measured process during the window (KiB).
    pub peak_rss_kib: Option<u64>,
    /// False when the peak could not be reset before the window (it is then the lifetime peak).
    pub peak_reset: bool,
}

impl RunResult {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// CPU seconds per 1,000 events.
    pub fn cpu_per_1k(&self) -> Option<f64> {
        self.cpu_seconds
            .filter(|_| self.requests > 0)
            .map(|c| c * 1000.0 / self.requests as f64)
    }

    /// Reads the `WRK_RESULT {...}` line printed by bench/wrk/acr-push.lua.
    pub fn from_wrk_line(json: &Value) -> Option<Self> {
        let n = |k: &str| json.get(k).and_then(Value::as_f64);
        let errors = [
            "errors_status",
            "errors_connect",
            "errors_read",
            "errors_write",
            "errors_timeout",
        ]
        .iter()
        .map(|k| n(k).unwrap_or(0.0) as u64)
        .sum();
        Some(Self {
            requests: n("requests")? as u64,
            seconds: n("duration_us")? / 1e6,
            p50_us: n("p50_us")?,
            p99_us: n("p99_us")?,
            max_us: n("max_us")?,
            errors,
            ..Self::default()
        })
    }

    /// As JSON, for results files.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "requests": self.requests,
            "seconds": self.seconds,
            "rps": self.rps(),
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "max_us": self.max_us,
            "errors": self.errors,
            "cpu_seconds": self.cpu_seconds,
            "cpu_seconds_per_1000": self.cpu_per_1k(),
            "peak_rss_kib": self.peak_rss_kib,
            "peak_reset": self.peak_reset,
        })
    }

    /// Reads back what [`RunResult::to_json`] wrote.
    pub fn from_json(json: &Value) -> Option<Self> {
        let n = |k: &str| json.get(k).and_then(Value::as_f64);
        Some(Self {
            requests: n("requests")? as u64,
            seconds: n("seconds")?,
            p50_us: n("p50_us")?,
            p99_us: n("p99_us")?,
            max_us: n("max_us")?,
            errors: n("errors").unwrap_or(0.0) as u64,
            cpu_seconds: n("cpu_seconds"),
            peak_rss_kib: json.get("peak_rss_kib").and_then(Value::as_u64),
            peak_reset: json
                .get("peak_reset")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// Nearest-rank percentile of sorted values (`q` in 0..=1).
pub fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    f64::from(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn wrk_line_round_trip() {
        let line: Value = serde_json::from_str(
            r#"{"requests":526,"duration_us":2026186,"p50_us":2724,"p99_us":16624,"max_us":24638,"mean_us":4504.5,"errors_status":1,"errors_connect":0,"errors_read":2,"errors_write":0,"errors_timeout":0}"#,
        )
        .unwrap();
        let r = RunResult::from_wrk_line(&line).unwrap();
        assert_eq!(r.requests, 526);
        assert_eq!(r.errors, 3);
        assert!((r.rps() - 259.6).abs() < 0.1);
        let back = RunResult::from_json(&r.to_json()).unwrap();
        assert_eq!(back.requests, 526);
        assert_eq!(back.p99_us, 16624.0);
    }
}
