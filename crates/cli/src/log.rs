//! The host's log: one line per request (method, path without the query string, status,
//! milliseconds, request id), the component's own output, and the host's warnings; as text
//! (default) or JSON lines (`--log-format json`), filtered by a `RUST_LOG`-style level.
//! Nothing secret is ever passed here: no headers, no query strings, no variable values.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable with the level (`error`, `warn`, `info`, `debug`, `off`), as
/// `RUST_LOG` directives; `target=level` directives are read for their level.
pub const LOG_LEVEL_ENV: &str = "RUST_LOG";

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `POST /acr 201 3.2ms id=…`
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Severity, least verbose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing at all.
    Off,
    /// Failures.
    Error,
    /// Degraded operation.
    Warn,
    /// One line per request, the component's output.
    Info,
    /// More.
    Debug,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// Reads a `RUST_LOG`-style value: the last directive's level wins (`info`,
    /// `acr_webhook=debug,warn`, ...); `trace` counts as debug.
    pub fn parse_directives(value: &str) -> Result<Level, String> {
        let mut level = Level::Info;
        for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let name = directive.rsplit('=').next().unwrap_or(directive);
            level = match name.to_ascii_lowercase().as_str() {
                "off" => Level::Off,
                "error" => Level::Error,
                "warn" => Level::Warn,
                "info" => Level::Info,
                "debug" | "trace" => Level::Debug,
                _ if directive.contains('=') => {
                    return Err(format!(
                        "unknown level in {LOG_LEVEL_ENV} directive `{directive}`"
                    ))
                }
                // A bare target name means "everything for that target": debug.
                _ => Level::Debug,
            };
        }
        Ok(level)
    }
}

#[derive(Debug)]
struct Logger {
    format: LogFormat,
    level: Level,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Sets the format and level once, at start-up (later calls are ignored).
pub fn init(format: LogFormat, level: Level) {
    let _ = LOGGER.set(Logger { format, level });
}

fn logger() -> &'static Logger {
    LOGGER.get_or_init(|| Logger {
        format: LogFormat::Text,
        level: Level::Info,
    })
}

/// The log format in force.
pub fn format() -> LogFormat {
    logger().format
}

fn enabled(level: Level) -> bool {
    level != Level::Off && level <= logger().level
}

/// A new request id: unique in this process, unpredictable enough to correlate lines.
pub fn new_request_id() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let seed = *START_NANOS.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    format!(
        "{:016x}",
        (seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(17) ^ n
    )
}

static START_NANOS: OnceLock<u64> = OnceLock::new();

fn now_rfc3339() -> String {
    acr_webhook_core::time::received_at(SystemTime::now())
}

fn write(level: Level, text: String, json: serde_json::Value) {
    if !enabled(level) {
        return;
    }
    match logger().format {
        LogFormat::Text => eprintln!("{text}"),
        LogFormat::Json => {
            let mut object = serde_json::json!({ "ts": now_rfc3339(), "level": level.as_str() });
            if let (Some(map), serde_json::Value::Object(extra)) = (object.as_object_mut(), json) {
                map.extend(extra);
            }
            eprintln!("{object}");
        }
    }
}

/// The line for one request: never the query string (it can carry a key).
pub fn request(id: &str, method: &str, path: &str, status: u16, ms: f64) {
    let level = if status >= 500 {
        Level::Warn
    } else {
        Level::Info
    };
    write(
        level,
        format!("{method} {path} {status} {ms:.1}ms id={id}"),
        serde_json::json!({
            "request_id": id, "method": method, "path": path, "status": status,
            "ms": (ms * 10.0).round() / 10.0,
        }),
    );
}

/// What the component printed while handling request `id`, line by line.
pub fn component_output(id: &str, output: &[u8]) {
    for line in String::from_utf8_lossy(output)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        // The component marks what needs attention (an event stored beside a different one
        // that holds its id) with "warning:".
        let level = if line.contains("warning:") {
            Level::Warn
        } else {
            Level::Info
        };
        write(
            level,
            line.to_owned(),
            serde_json::json!({ "request_id": id, "source": "component", "message": line }),
        );
    }
}

/// A host message at `level`, optionally tied to a request.
pub fn message(level: Level, id: Option<&str>, text: &str) {
    let json = match id {
        Some(id) => serde_json::json!({ "request_id": id, "message": text }),
        None => serde_json::json!({ "message": text }),
    };
    write(level, text.to_owned(), json);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_directives() {
        assert_eq!(Level::parse_directives("").unwrap(), Level::Info);
        assert_eq!(Level::parse_directives("warn").unwrap(), Level::Warn);
        assert_eq!(
            Level::parse_directives("acr_webhook=debug").unwrap(),
            Level::Debug
        );
        assert_eq!(
            Level::parse_directives("debug,hyper=off").unwrap(),
            Level::Off
        );
        assert_eq!(Level::parse_directives("TRACE").unwrap(), Level::Debug);
        assert!(Level::parse_directives("x=loud").is_err());
    }

    #[test]
    fn request_ids_are_distinct() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 16));
    }
}
