//! `acr-webhook up`: serve the application described by a spin.toml, like `spin up`.

use crate::manifest::{self, Manifest, DEFAULT_MANIFEST_FILE};
use crate::{connections, engine, server, slots};
use anyhow::{anyhow, Context, Result};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// The address `up` listens on by default (Spin's default).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// How long the runtime may take to wind down its remaining tasks after the server stops.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Arguments of `acr-webhook up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The application manifest: a spin.toml file, or a folder that contains one.
    #[arg(long = "from", short = 'f', value_name = "MANIFEST", default_value = DEFAULT_MANIFEST_FILE)]
    pub from: PathBuf,

    /// The address to listen on, IP:PORT or HOST:PORT (port 0 picks a free port; the banner
    /// shows which).
    #[arg(long, value_name = "ADDRESS", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Sets an application variable, NAME=VALUE; may be repeated. Wins over the
    /// SPIN_VARIABLE_<NAME> environment variable, which wins over the manifest's default.
    // Parsed in `run`, not by clap, so that a malformed argument's value (perhaps a
    // secret) never appears in an error message.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    pub variables: Vec<String>,

    /// How log lines are written: text, or JSON lines with a request id. The level comes
    /// from RUST_LOG (error, warn, info, debug; default info).
    #[arg(long = "log-format", value_enum, default_value_t = crate::log::LogFormat::Text)]
    pub log_format: crate::log::LogFormat,

    /// Requests handled at once (at least 2); beyond it, 503 with `Retry-After: 1` at once.
    #[arg(long, value_name = "N", default_value_t = slots::DEFAULT_MAX_CONCURRENT_REQUESTS,
          value_parser = at_least_one::<usize>)]
    pub max_concurrent_requests: usize,

    /// Of those, how many may be reads of the trail (GET /events, /events/{id},
    /// /events/summary), fewer than --max-concurrent-requests so that writes always find a
    /// slot; beyond it, 503 with `Retry-After: 1`. Default: a quarter of
    /// --max-concurrent-requests.
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>)]
    pub max_concurrent_reads: Option<usize>,

    /// Client connections open at once; at the bound, the one that has waited longest for
    /// its request head is closed to make room. Default: what the open-file limit (raised to
    /// its hard limit at start) leaves beside the outbound connections, at most 4096.
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>)]
    pub max_connections: Option<usize>,

    /// Linear memory one instance (one request) may use, in MiB; past it the request gets 500.
    #[arg(long, value_name = "MIB", default_value_t = server::DEFAULT_MAX_INSTANCE_MEMORY >> 20,
          value_parser = at_least_one::<usize>)]
    pub max_instance_memory_mib: usize,

    /// How long one request's guest may run, in milliseconds, before it is stopped (500 if it
    /// had not answered); the time a client takes to read the answer does not count.
    /// Default: the app's write_budget_ms plus 1000 (5000 without one).
    #[arg(long, value_name = "MS", value_parser = at_least_one::<u64>)]
    pub request_deadline_ms: Option<u64>,

    /// How long writing an answer may make no progress (a client not reading), in seconds,
    /// before the connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = server::DEFAULT_WRITE_TIMEOUT.as_secs(),
          value_parser = at_least_one::<u64>)]
    pub write_timeout_secs: u64,

    /// Serves `GET /metrics` (Prometheus text format: requests per route and status,
    /// durations, outbound requests, server_busy refusals, the process's own figures) on this
    /// address, a listener of its own; off by default. Keep it on loopback or a private
    /// network: it needs no key.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,

    /// Write /tmp/perf-<pid>.map so that `perf report` names the component's functions
    /// (profiling; BENCHMARKS.md).
    #[arg(long, hide = true)]
    pub perfmap: bool,
}

/// Parses `--listen`: a socket address, or a host name and port (first address it resolves to).
pub fn parse_listen(arg: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = arg.parse() {
        return Ok(addr);
    }
    arg.to_socket_addrs()
        .map_err(|e| format!("expected IP:PORT or HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| "the host name resolves to no address".to_string())
}

/// Parses a limit: a whole number of at least 1 (a limit of 0 would make every request fail).
/// clap names the flag in its error.
pub fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(arg: &str) -> Result<T, String> {
    let n: T = arg
        .trim()
        .parse()
        .map_err(|_| "expected a whole number".to_string())?;
    if n < T::from(1) {
        return Err("must be at least 1 (0 would make every request fail)".to_string());
    }
    Ok(n)
}

/// Parses `--variable` arguments; errors name the variable, never the value.
pub fn parse_variable_args(args: &[String]) -> Result<Vec<(String, String)>> {
    args.iter()
        .map(|arg| {
            manifest::parse_variable_arg(arg).map_err(|reason| match arg.split_once('=') {
                Some((name, _)) => anyhow!("invalid --variable {name:?}: {reason}"),
                None => anyhow!("invalid --variable: expected NAME=VALUE"),
            })
        })
        .collect()
}

/// Loads a manifest and resolves its variables (`--variable` over `SPIN_VARIABLE_*` over
/// defaults), as `up` and `init` both do.
pub fn load_app(from: &std::path::Path, variable_args: &[String]) -> Result<manifest::App> {
    let cli_variables = parse_variable_args(variable_args)?;
    let manifest = Manifest::load(from)?;
    let resolution = manifest::resolve_variables(&manifest.variables, &cli_variables, |k| {
        std::env::var(k).ok()
    })?;
    for warning in &resolution.warnings {
        eprintln!("warning: {warning}");
    }
    manifest.resolve(&resolution.variables)
}

/// Refuses to serve with keys the component would refuse on every request (missing, too short,
/// unprintable, a key both in `webhook_keys` and `read_keys`): better a failed start than a
/// receiver that answers 500 to every sender. The error names the variable, never a value.
/// Apps that declare no `webhook_keys` variable are not checked.
pub fn check_keys(app: &manifest::App) -> Result<()> {
    use acr_webhook_core::config::{keys, VAR_WEBHOOK_KEYS};
    if !app.variables.names().any(|n| n == VAR_WEBHOOK_KEYS) {
        return Ok(());
    }
    keys(|name| app.variables.get(name).ok().map(str::to_owned))
        .map(drop)
        .map_err(|e| anyhow!("refusing to start: {e} (component {:?})", app.component_id))
}

/// Runs `up` to completion: Ok after a clean SIGINT/SIGTERM shutdown.
pub fn run(args: UpArgs) -> Result<()> {
    let level = crate::log::Level::parse_directives(
        &std::env::var(crate::log::LOG_LEVEL_ENV).unwrap_or_default(),
    )
    .map_err(|e| anyhow!(e))?;
    crate::log::init(args.log_format, level);
    let app = load_app(&args.from, &args.variables)?;
    check_keys(&app)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let limits = limits(&args, &app)?;
    let options = engine::EngineOptions {
        perfmap: args.perfmap,
        // The instance pool holds what the slots may run at once.
        instances: limits.max_concurrent_requests,
        ..engine::EngineOptions::default()
    };
    let result = runtime.block_on(server::run(
        app,
        args.listen,
        options,
        limits,
        args.metrics_listen,
    ));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

/// The server's limits from `args`: the slots and the reads' share checked against each
/// other, the connection bound from the open-file limit (raised to its hard limit here).
fn limits(args: &UpArgs, app: &manifest::App) -> Result<server::Limits> {
    let requests = args.max_concurrent_requests;
    if requests < 2 {
        anyhow::bail!(
            "--max-concurrent-requests must be at least 2: reads take at most all slots but one \
             (--max-concurrent-reads), so that writes always find a slot"
        );
    }
    let reads = args
        .max_concurrent_reads
        .unwrap_or_else(|| crate::slots::default_max_reads(requests));
    if reads >= requests {
        anyhow::bail!(
            "--max-concurrent-reads ({reads}) must be below --max-concurrent-requests \
             ({requests}), so that writes always find a slot"
        );
    }
    let open_files = connections::raise_open_files_limit();
    let outbound = connections::outbound_descriptors(
        requests,
        reads,
        crate::outbound_pool::PoolSettings::default().max_idle_per_host,
    );
    let (max_connections, warning) =
        connections::connection_bound(args.max_connections, open_files, outbound);
    if let Some(warning) = warning {
        crate::log::message(crate::log::Level::Warn, None, &warning);
    }
    crate::log::message(
        crate::log::Level::Info,
        None,
        &format!(
            "up to {max_connections} client connections (--max-connections; open-file limit {})",
            open_files.map_or("unknown".to_string(), |n| n.to_string())
        ),
    );
    Ok(server::Limits {
        max_concurrent_requests: requests,
        max_concurrent_reads: reads,
        max_connections,
        max_instance_memory: args.max_instance_memory_mib.saturating_mul(1 << 20),
        request_deadline: match args.request_deadline_ms {
            Some(ms) => Duration::from_millis(ms),
            None => server::Limits::deadline_for(app),
        },
        write_timeout: Duration::from_secs(args.write_timeout_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_of_zero_are_refused() {
        assert_eq!(at_least_one::<u64>("1"), Ok(1));
        assert_eq!(at_least_one::<usize>("256"), Ok(256));
        assert!(at_least_one::<u64>("0").unwrap_err().contains("at least 1"));
        assert!(at_least_one::<usize>("-1").is_err());
        assert!(at_least_one::<usize>("many").is_err());
    }

    #[test]
    fn variable_errors_do_not_echo_values() {
        let err = parse_variable_args(&["COSMOS_KEY=hunter2".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("COSMOS_KEY"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_variable_args(&["hunter2".to_string()])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:3000").unwrap(),
            "127.0.0.1:3000".parse().unwrap()
        );
        assert_eq!(parse_listen("[::1]:0").unwrap(), "[::1]:0".parse().unwrap());
        assert!(parse_listen("localhost:3000").unwrap().ip().is_loopback());
        assert!(parse_listen("3000").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
    }

    #[test]
    fn variables_parse_in_order() {
        let vars = parse_variable_args(&["a=1".into(), "b=x=y".into(), "a=2".into()]).unwrap();
        assert_eq!(
            vars,
            [
                ("a".into(), "1".into()),
                ("b".into(), "x=y".into()),
                ("a".into(), "2".into())
            ]
        );
    }
}
