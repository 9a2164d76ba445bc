//! `acr-webhook-bench run`: the whole benchmark in one run, one table.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use acr_webhook_testkit::{
    free_port, port_is_open, repo_root, ChildGuard, CosmosStore, FakeEntra, COSMOS_CLI_ENV,
};
use acr_webhook_wasm_build::wasm_opt_oz;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::procfs;
use crate::stats::RunResult;

/// The Cosmos emulator's well-known public key (the local store checks no signature).
const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
const WEBHOOK_KEY: &str = "bench-webhook-key";
const DATABASE: &str = "acr";
const CONTAINER: &str = "events";

/// Arguments of `acr-webhook-bench run` (paths relative to the repository root).
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The acr-webhook binary (`cargo build --profile host`).
    #[arg(long, default_value = "target/host/acr-webhook")]
    pub host: PathBuf,
    /// The manifest `acr-webhook up` serves.
    #[arg(long, default_value = "spin.toml")]
    pub manifest: PathBuf,
    /// The Node.js baseline receiver's folder (with node_modules installed).
    #[arg(long, default_value = "bench/node-receiver")]
    pub node_receiver: PathBuf,
    /// The wrk script.
    #[arg(long, default_value = "bench/wrk/acr-push.lua")]
    pub wrk_script: PathBuf,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of load before each measured run.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Concurrencies, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub concurrency: Vec<usize>,
    /// Requests timed by `acr-webhook bench-instantiate`.
    #[arg(long, default_value_t = 100_000)]
    pub instantiate_requests: usize,
    /// The output of `cargo bench --bench signing` (divan), to include in the table.
    #[arg(long)]
    pub signing: Option<PathBuf>,
    /// Skip the Node.js baseline.
    #[arg(long)]
    pub no_node: bool,
    /// Run the store exactly as its CLI does, answering every request with
    /// `connection: close` (by default it keeps connections alive, as Cosmos DB does; see
    /// bench/store-keepalive.js).
    #[arg(long)]
    pub store_connection_close: bool,
    /// Skip the bare write with a new connection per request (an extra floor row at the
    /// lowest and highest concurrency).
    #[arg(long)]
    pub no_new_connection_rows: bool,
    /// Where results, logs and the wasm-opt output go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Bare,
    BareNewConnection,
    Receiver,
    /// `acr-webhook up` with `cosmos_auth=entra` (client secret, from a fake Entra ID on
    /// loopback), writing to the same store: the token comes from the cache after the first
    /// request, so the difference to [`Target::Receiver`] is what signing with Entra ID costs
    /// per event when the cache is warm.
    ReceiverEntra,
    Node,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Bare => "bare write (native client, keep-alive)",
            Target::BareNewConnection => "bare write, new connection per request",
            Target::Receiver => "acr-webhook up",
            Target::ReceiverEntra => "acr-webhook up, cosmos_auth=entra (token cached)",
            Target::Node => "Node.js + @azure/cosmos",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Target::Bare => "bare",
            Target::BareNewConnection => "bare_new_connection",
            Target::Receiver => "receiver",
            Target::ReceiverEntra => "receiver_entra",
            Target::Node => "node",
        }
    }
}

struct Measurement {
    target: Target,
    concurrency: usize,
    result: RunResult,
}

/// The whole benchmark.
pub fn run(args: RunArgs) -> Result<()> {
    let root = repo_root();
    std::env::set_current_dir(&root)?;
    let out = args.out.clone();
    std::fs::create_dir_all(&out)?;
    check_tools(&args)?;
    let machine = machine_info();
    eprintln!("bench: {}", machine["summary"].as_str().unwrap_or(""));

    // The component, in-process, without I/O.
    eprintln!(
        "bench: acr-webhook bench-instantiate ({} requests)...",
        args.instantiate_requests
    );
    let component = bench_instantiate(&args, None, args.instantiate_requests, &[])?;
    eprintln!("bench: the same without memory kept resident between instances (for comparison)...");
    let not_kept_resident = bench_instantiate(
        &args,
        None,
        args.instantiate_requests,
        &["--keep-resident=0"],
    )?;
    let wasm_path = PathBuf::from(component["wasm"].as_str().unwrap_or_default());
    let optimized = wasm_opt(&args, &wasm_path, &out)?;

    // The store, the database and the container.
    if !args.store_connection_close {
        std::env::set_var(COSMOS_CLI_ENV, root.join("bench/store-keepalive.js"));
    }
    let store = CosmosStore::start();
    store.create_database(DATABASE);
    store.create_container(DATABASE, CONTAINER, "/id");
    eprintln!("bench: local store on {}", store.endpoint());

    // The receiver and the baseline, on free loopback ports.
    let up_port = free_port();
    let mut up_cmd = Command::new(&args.host);
    quiet_backtraces(&mut up_cmd);
    up_cmd
        .args(["up", "--from"])
        .arg(&args.manifest)
        .args(["--listen", &format!("127.0.0.1:{up_port}")])
        .env("SPIN_VARIABLE_COSMOS_ENDPOINT", store.endpoint())
        .env("SPIN_VARIABLE_COSMOS_KEY", EMULATOR_KEY)
        .env("SPIN_VARIABLE_WEBHOOK_KEYS", WEBHOOK_KEY);
    let mut up = ChildGuard::spawn("acr-webhook up", up_cmd, &out.join("up.log"))?;
    wait_port(&mut up, up_port)?;

    // The same receiver signing with Entra ID tokens: a fake Entra ID issues them; the local
    // store checks no signature, so both receivers write to the same store the same way.
    let entra = FakeEntra::start();
    let entra_port = free_port();
    let mut entra_cmd = Command::new(&args.host);
    quiet_backtraces(&mut entra_cmd);
    entra_cmd
        .args(["up", "--from"])
        .arg(&args.manifest)
        .args(["--listen", &format!("127.0.0.1:{entra_port}")])
        .env("SPIN_VARIABLE_COSMOS_ENDPOINT", store.endpoint())
        .env("SPIN_VARIABLE_COSMOS_AUTH", "entra")
        .env("SPIN_VARIABLE_ENTRA_TOKEN_SOURCE", "client-secret")
        .env("SPIN_VARIABLE_ENTRA_TENANT_ID", entra.tenant_id())
        .env("SPIN_VARIABLE_ENTRA_CLIENT_ID", &entra.app().client_id)
        .env("SPIN_VARIABLE_ENTRA_CLIENT_SECRET", entra.client_secret())
        .env(
            "SPIN_VARIABLE_ENTRA_AUTHORITY_HOST",
            entra.authority_host().trim_end_matches('/'),
        )
        .env("SPIN_VARIABLE_ENTRA_AUDIENCE", "https://cosmos.azure.com")
        .env("SPIN_VARIABLE_WEBHOOK_KEYS", WEBHOOK_KEY);
    let mut up_entra = ChildGuard::spawn(
        "acr-webhook up (entra)",
        entra_cmd,
        &out.join("up-entra.log"),
    )?;
    wait_port(&mut up_entra, entra_port)?;

    let mut node = None;
    let mut node_port = 0;
    if !args.no_node {
        node_port = free_port();
        let mut cmd = Command::new("node");
        quiet_backtraces(&mut cmd);
        cmd.arg("server.js")
            .current_dir(&args.node_receiver)
            .env("COSMOS_ENDPOINT", store.endpoint())
            .env("COSMOS_KEY", EMULATOR_KEY)
            .env("WEBHOOK_KEYS", WEBHOOK_KEY)
            .env("PORT", node_port.to_string());
        let mut guard = ChildGuard::spawn("node receiver", cmd, &out.join("node-receiver.log"))?;
        wait_port(&mut guard, node_port)?;
        node = Some(guard);
    }
    let up_pid = up.id().ok_or_else(|| anyhow!("acr-webhook up is gone"))?;
    let up_entra_pid = up_entra
        .id()
        .ok_or_else(|| anyhow!("acr-webhook up (entra) is gone"))?;
    let node_pid = node.as_ref().and_then(ChildGuard::id);
    let started_at = load_average();

    // Every target at every concurrency, interleaved, each on a fresh container.
    let mut measurements = Vec::new();
    let lowest = args.concurrency.iter().copied().min().unwrap_or(1);
    let highest = args.concurrency.iter().copied().max().unwrap_or(1);
    for &c in &args.concurrency {
        let mut targets = vec![Target::Bare, Target::Receiver, Target::ReceiverEntra];
        if node.is_some() {
            targets.push(Target::Node);
        }
        if !args.no_new_connection_rows && (c == lowest || c == highest) {
            targets.push(Target::BareNewConnection);
        }
        for target in targets {
            fresh_container(&store)?;
            let prefix = format!("{}-c{c}", target.key());
            eprintln!("bench: {} at concurrency {c}...", target.label());
            let result = match target {
                Target::Bare | Target::BareNewConnection => bare_write(
                    &args,
                    &store.endpoint(),
                    c,
                    &prefix,
                    target == Target::BareNewConnection,
                )?,
                Target::Receiver => measure_receiver(&args, up_pid, up_port, c, &prefix)?,
                Target::ReceiverEntra => {
                    measure_receiver(&args, up_entra_pid, entra_port, c, &prefix)?
                }
                Target::Node => {
                    let pid = node_pid.ok_or_else(|| anyhow!("the Node receiver is gone"))?;
                    measure_receiver(&args, pid, node_port, c, &prefix)?
                }
            };
            eprintln!(
                "bench:   {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                result.rps(),
                result.p50_us / 1000.0,
                result.p99_us / 1000.0,
                result.errors
            );
            measurements.push(Measurement {
                target,
                concurrency: c,
                result,
            });
            // Kept as it comes, so that a late failure loses nothing.
            let so_far: Vec<Value> = measurements
                .iter()
                .map(|m| json!({"target": m.target.key(), "concurrency": m.concurrency, "result": m.result.to_json()}))
                .collect();
            std::fs::write(
                out.join("runs-partial.json"),
                serde_json::to_string_pretty(&so_far)?,
            )?;
        }
    }
    let ended_at = load_average();
    let tokens_issued = entra.stats().total_issued();
    drop(node);
    drop(up);
    drop(up_entra);
    drop(entra);
    drop(store);

    let signing = match &args.signing {
        Some(path) => parse_divan(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading the signing bench output {}", path.display()))?,
        ),
        None => Vec::new(),
    };

    let report = Report {
        measurements: &measurements,
        component: &component,
        optimized: optimized.as_ref(),
        not_kept_resident: &not_kept_resident,
        signing: &signing,
        machine: &machine,
        load: (started_at, ended_at),
        duration: args.duration,
        warmup: args.warmup,
        store_keep_alive: !args.store_connection_close,
        tokens_issued,
    };
    let text = report.render();
    println!("{text}");
    let results = report.to_json();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    std::fs::write(out.join("results.md"), &text)?;
    eprintln!(
        "bench: results in {} and {}",
        out.join("results.md").display(),
        out.join("results.json").display()
    );
    Ok(())
}

/// Runs a child without RUST_BACKTRACE, so that the figures do not depend on the caller's
/// environment (the 2026-11-25 run measured a backtrace capture per `Store` drop with it;
/// the 1af5519 run could not reproduce that cost).
fn quiet_backtraces(cmd: &mut Command) {
    cmd.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
}

fn check_tools(args: &RunArgs) -> Result<()> {
    for (tool, hint) in [
        ("wrk", "apt-get install wrk"),
        ("node", "Node.js 20 is needed"),
    ] {
        if which(tool).is_none() {
            bail!("`{tool}` is not on the PATH ({hint})");
        }
    }
    if !args.host.is_file() {
        bail!(
            "{} is missing: cargo build --profile host -p acr-webhook-cli",
            args.host.display()
        );
    }
    if !args.no_node
        && !args
            .node_receiver
            .join("node_modules/@azure/cosmos")
            .is_dir()
    {
        bail!(
            "the Node baseline is not installed: npm ci --prefix {}",
            args.node_receiver.display()
        );
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

fn wait_port(guard: &mut ChildGuard, port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    guard
        .wait_until(Duration::from_secs(120), || port_is_open(addr))
        .map_err(|e| anyhow!(e))
}

/// Deletes and re-creates the container, so that every run starts from an empty one.
fn fresh_container(store: &CosmosStore) -> Result<()> {
    let r = store.request(
        "DELETE",
        &format!("/dbs/{DATABASE}/colls/{CONTAINER}"),
        &[],
        None,
    );
    if r.status != 204 && r.status != 404 {
        bail!("deleting the container answered {}", r.status);
    }
    store.create_container(DATABASE, CONTAINER, "/id");
    Ok(())
}

/// wrk with the push script; returns its `WRK_RESULT` line.
fn wrk(
    args: &RunArgs,
    port: u16,
    concurrency: usize,
    seconds: u64,
    prefix: &str,
) -> Result<RunResult> {
    let output = Command::new("wrk")
        .arg(format!("-t{}", concurrency.min(2)))
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{seconds}s"))
        .args(["--timeout", "10s", "-s"])
        .arg(&args.wrk_script)
        .arg(format!("http://127.0.0.1:{port}"))
        .env("BENCH_KEY", WEBHOOK_KEY)
        .env("BENCH_PREFIX", prefix)
        .stdin(Stdio::null())
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_RESULT "))
        .ok_or_else(|| {
            anyhow!(
                "wrk printed no result: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    RunResult::from_wrk_line(&serde_json::from_str(line)?)
        .ok_or_else(|| anyhow!("unreadable wrk result {line}"))
}

/// Warm-up, then the measured wrk run with the receiver's CPU and peak RSS read around it.
fn measure_receiver(
    args: &RunArgs,
    pid: u32,
    port: u16,
    concurrency: usize,
    prefix: &str,
) -> Result<RunResult> {
    if args.warmup > 0 {
        wrk(
            args,
            port,
            concurrency,
            args.warmup,
            &format!("{prefix}-warmup"),
        )?;
    }
    let before = procfs::cpu(pid)?;
    let peak_reset = procfs::reset_peak_rss(pid);
    let mut result = wrk(args, port, concurrency, args.duration, prefix)?;
    result.cpu_seconds = Some(procfs::cpu(pid)?.since(before).total());
    result.peak_rss_kib = procfs::peak_rss_kib(pid).ok();
    result.peak_reset = peak_reset;
    Ok(result)
}

/// The bare-write client as a child process (its CPU and RSS are its own).
fn bare_write(
    args: &RunArgs,
    endpoint: &str,
    concurrency: usize,
    prefix: &str,
    new_connection: bool,
) -> Result<RunResult> {
    let mut cmd = Command::new(std::env::current_exe()?);
    quiet_backtraces(&mut cmd);
    cmd.args(["bare-write", "--endpoint", endpoint])
        .args(["--database", DATABASE, "--container", CONTAINER])
        .arg(format!("--concurrency={concurrency}"))
        .arg(format!("--duration={}", args.duration))
        .arg(format!("--warmup={}", args.warmup))
        .arg(format!("--prefix={prefix}"))
        .env(crate::bare::KEY_ENV, EMULATOR_KEY)
        .stdin(Stdio::null());
    if new_connection {
        cmd.arg("--new-connection-per-request");
    }
    let output = cmd.output().context("running bare-write")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BARE_RESULT "))
        .ok_or_else(|| {
            anyhow!(
                "bare-write printed no result: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    RunResult::from_json(&serde_json::from_str(line)?)
        .ok_or_else(|| anyhow!("unreadable bare-write result {line}"))
}

/// `acr-webhook bench-instantiate --json`.
fn bench_instantiate(
    args: &RunArgs,
    component: Option<&Path>,
    requests: usize,
    extra: &[&str],
) -> Result<Value> {
    let mut cmd = Command::new(&args.host);
    quiet_backtraces(&mut cmd);
    cmd.args(["bench-instantiate", "--json", "--from"])
        .arg(&args.manifest)
        .args(extra)
        .arg(format!("--requests={requests}"))
        .stdin(Stdio::null());
    if let Some(path) = component {
        cmd.arg("--component").arg(path);
    }
    let output = cmd
        .output()
        .context("running acr-webhook bench-instantiate")?;
    if !output.status.success() {
        bail!(
            "acr-webhook bench-instantiate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow!("bench-instantiate printed no JSON: {stdout}"))?;
    Ok(serde_json::from_str(line)?)
}

/// `wasm-opt -Oz` on the release module when binaryen is installed, and the optimized
/// module measured the same way (fewer requests): does it still load, and what changes.
fn wasm_opt(args: &RunArgs, wasm: &Path, out: &Path) -> Result<Option<Value>> {
    if which("wasm-opt").is_none() || !wasm.is_file() {
        eprintln!("bench: wasm-opt not installed (apt-get install binaryen); skipped");
        return Ok(None);
    }
    let optimized = out.join("acr_webhook.Oz.wasm");
    // The component-type custom sections are kept as they are.
    if let Err(e) = wasm_opt_oz(wasm, &optimized) {
        eprintln!("bench: {e}; skipped");
        return Ok(None);
    }
    eprintln!("bench: the wasm-opt -Oz module, 20000 requests...");
    let measured = bench_instantiate(
        args,
        Some(&optimized),
        args.instantiate_requests.min(20_000),
        &[],
    );
    Ok(Some(match measured {
        Ok(v) => v,
        Err(e) => json!({
            "wasm": optimized.display().to_string(),
            "wasm_bytes": std::fs::metadata(&optimized).map(|m| m.len()).unwrap_or(0),
            "error": format!("{e:#}"),
        }),
    }))
}

/// `(name, median ns)` of each benchmark in divan's table.
fn parse_divan(text: &str) -> Vec<(String, f64)> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('│').map(str::trim).collect();
        // name+fastest │ slowest │ median │ mean │ samples │ iters
        if cells.len() < 6 {
            continue;
        }
        let first: Vec<&str> = cells[0].split_whitespace().collect();
        let Some(name_end) = first.len().checked_sub(2) else {
            continue;
        };
        let name = first[..name_end]
            .iter()
            .filter(|w| !w.starts_with(['├', '╰', '│']) && **w != "─")
            .map(|w| w.trim_start_matches(['├', '╰', '─', ' ']))
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(ns) = parse_duration_ns(cells[2]) {
            if !name.is_empty() {
                rows.push((name, ns));
            }
        }
    }
    rows
}

fn parse_duration_ns(cell: &str) -> Option<f64> {
    let mut parts = cell.split_whitespace();
    let value: f64 = parts.next()?.parse().ok()?;
    let factor = match parts.next()? {
        "ps" => 0.001,
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(value * factor)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).to_string();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

fn machine_info() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<u64>().ok())
        .map(|k| k / 1024 / 1024)
        .unwrap_or(0);
    let kernel = command_line("uname", &["-r"]);
    let node = command_line("node", &["--version"]);
    let wrk = command_line("wrk", &["-v"])
        .split(" [")
        .next()
        .unwrap_or("")
        .to_string();
    let summary = format!("{cpus} × {model}, {mem} GiB, Linux {kernel}; node {node}; {wrk}");
    json!({"cpus": cpus, "model": model, "mem_gib": mem, "kernel": kernel, "node": node, "wrk": wrk, "summary": summary})
}

struct Report<'a> {
    measurements: &'a [Measurement],
    component: &'a Value,
    optimized: Option<&'a Value>,
    not_kept_resident: &'a Value,
    signing: &'a [(String, f64)],
    machine: &'a Value,
    load: (String, String),
    duration: u64,
    warmup: u64,
    store_keep_alive: bool,
    /// Tokens the fake Entra ID issued to the Entra receiver over the whole run.
    tokens_issued: u64,
}

impl Report<'_> {
    fn find(&self, target: Target, c: usize) -> Option<&RunResult> {
        self.measurements
            .iter()
            .find(|m| m.target == target && m.concurrency == c)
            .map(|m| &m.result)
    }

    fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## acr-webhook benchmark");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Machine: {}. Load average at start {}, at end {}.",
            self.machine["summary"].as_str().unwrap_or(""),
            self.load.0,
            self.load.1
        );
        let _ = writeln!(
            s,
            "Each run: {} s warm-up, then {} s measured, on a freshly created container; every event a new document (201). Load: wrk (receivers), the bare-write client (floor), same connections and threads. Store: the local @vercel/cosmosdb-server, {}.",
            self.warmup,
            self.duration,
            if self.store_keep_alive {
                "keeping connections alive as Cosmos DB does (bench/store-keepalive.js)"
            } else {
                "as its CLI runs it (`connection: close` on every answer)"
            }
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| target | conc. | req/s | p50 ms | p99 ms | max ms | errors | CPU s / 1k events | peak RSS MiB |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for m in self.measurements {
            let r = &m.result;
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                m.target.label(),
                m.concurrency,
                r.rps(),
                r.p50_us / 1000.0,
                r.p99_us / 1000.0,
                r.max_us / 1000.0,
                r.errors,
                r.cpu_per_1k()
                    .map(|c| format!("{c:.3}"))
                    .unwrap_or_else(|| "-".into()),
                r.peak_rss_kib
                    .map(|k| format!(
                        "{:.1}{}",
                        k as f64 / 1024.0,
                        if r.peak_reset { "" } else { " (lifetime)" }
                    ))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        let _ = writeln!(s);
        self.render_component(&mut s);
        let _ = writeln!(s);
        self.render_goals(&mut s);
        s
    }

    fn render_component(&self, s: &mut String) {
        let c = self.component;
        let ns = |v: &Value, k: &str, f: &str| v[k][f].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(s, "Component (in-process, `acr-webhook bench-instantiate`, {} requests answered 401 without I/O):", c["requests"]);
        let _ = writeln!(s);
        let _ = writeln!(s, "| figure | value |");
        let _ = writeln!(s, "|---|---:|");
        let kib = |b: f64| b / 1024.0;
        let _ = writeln!(
            s,
            "| .wasm as `make wasm` leaves it (opt-level z, LTO, strip, wasm-opt -Oz when binaryen is installed) | {:.0} bytes ({:.1} KiB) |",
            c["wasm_bytes"].as_f64().unwrap_or(0.0),
            kib(c["wasm_bytes"].as_f64().unwrap_or(0.0))
        );
        let _ = writeln!(
            s,
            "| as a component (with the preview1 proxy adapter) | {:.0} bytes ({:.1} KiB) |",
            c["component_bytes"].as_f64().unwrap_or(0.0),
            kib(c["component_bytes"].as_f64().unwrap_or(0.0))
        );
        if let Some(o) = self.optimized {
            let _ = writeln!(
                s,
                "| .wasm after one more `wasm-opt -Oz` pass | {:.0} bytes ({:.1} KiB){} |",
                o["wasm_bytes"].as_f64().unwrap_or(0.0),
                kib(o["wasm_bytes"].as_f64().unwrap_or(0.0)),
                if o.get("error").is_some() {
                    " — does not load"
                } else {
                    ""
                }
            );
        }
        let ms = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN) / 1e6;
        let _ = writeln!(
            s,
            "| pre-instantiation: read + componentize / compile / link + ProxyPre | {:.1} ms ({:.1} / {:.1} / {:.2}) |",
            ms(c, "pre_instantiate_ns"),
            ms(c, "read_componentize_ns"),
            ms(c, "compile_ns"),
            ms(c, "link_pre_ns")
        );
        let _ = writeln!(
            s,
            "| load + link from the precompiled (serialized) component | {:.2} ms |",
            ms(c, "precompiled_load_link_ns")
        );
        for (label, key) in [
            ("instantiate (fresh store + instance)", "instantiate"),
            ("handle (the 401 answer)", "handle"),
            ("instantiate + handle", "instantiate_handle"),
            ("instantiate + handle + drop", "total"),
        ] {
            let _ = writeln!(
                s,
                "| {label}: median / p99 / max | {:.1} / {:.1} / {:.1} µs |",
                ns(c, key, "median_ns") / 1e3,
                ns(c, key, "p99_ns") / 1e3,
                ns(c, key, "max_ns") / 1e3
            );
        }
        if let Some(o) = self.optimized.filter(|o| o.get("error").is_none()) {
            let _ = writeln!(
                s,
                "| that module: compile; instantiate + handle median / p99 ({} requests) | {:.1} ms; {:.1} / {:.1} µs |",
                o["requests"],
                ms(o, "compile_ns"),
                ns(o, "instantiate_handle", "median_ns") / 1e3,
                ns(o, "instantiate_handle", "p99_ns") / 1e3
            );
        }
        let k = self.not_kept_resident;
        let _ = writeln!(
            s,
            "| without the 64 KiB of memory and tables `up` keeps resident (--keep-resident=0): instantiate + handle median / p99; + drop median | {:.1} / {:.1} µs; {:.1} µs |",
            ns(k, "instantiate_handle", "median_ns") / 1e3,
            ns(k, "instantiate_handle", "p99_ns") / 1e3,
            ns(k, "total", "median_ns") / 1e3
        );
        for (name, ns) in self.signing {
            let _ = writeln!(s, "| signing (divan, native): {name} | {ns:.0} ns |");
        }
    }

    fn render_goals(&self, s: &mut String) {
        let _ = writeln!(s, "Goals (every ratio from this run):");
        let _ = writeln!(s);
        let mark = |ok: bool| if ok { "met" } else { "NOT met" };
        let concs: Vec<usize> = {
            let mut v: Vec<usize> = self.measurements.iter().map(|m| m.concurrency).collect();
            v.dedup();
            v
        };
        let lowest = concs.iter().copied().min().unwrap_or(1);
        let highest = concs.iter().copied().max().unwrap_or(1);
        if let (Some(r), Some(b)) = (
            self.find(Target::Receiver, lowest),
            self.find(Target::Bare, lowest),
        ) {
            let ratio = r.p50_us / b.p50_us;
            let _ = writeln!(
                s,
                "- receiver p50 ≤ 1.10 × bare write p50 at concurrency {lowest}: {:.2} / {:.2} ms = {ratio:.2}× — {}",
                r.p50_us / 1000.0,
                b.p50_us / 1000.0,
                mark(ratio <= 1.10)
            );
        }
        if let (Some(r), Some(b)) = (
            self.find(Target::Receiver, highest),
            self.find(Target::Bare, highest),
        ) {
            let ratio = r.rps() / b.rps();
            let _ = writeln!(
                s,
                "- receiver throughput ≥ 0.90 × bare write at concurrency {highest}: {:.0} / {:.0} req/s = {ratio:.2}× — {}",
                r.rps(),
                b.rps(),
                mark(ratio >= 0.90)
            );
        }
        if let (Some(r), Some(n)) = (
            self.find(Target::Receiver, highest),
            self.find(Target::Node, highest),
        ) {
            if let (Some(rc), Some(nc)) = (r.cpu_per_1k(), n.cpu_per_1k()) {
                let ratio = rc / nc;
                let _ = writeln!(
                    s,
                    "- CPU per event ≤ 1/3 of Node's at concurrency {highest}: {rc:.3} / {nc:.3} CPU s per 1k = {ratio:.2}× — {}",
                    mark(ratio <= 1.0 / 3.0)
                );
            }
            if let (Some(rm), Some(nm)) = (r.peak_rss_kib, n.peak_rss_kib) {
                let ratio = rm as f64 / nm as f64;
                let _ = writeln!(
                    s,
                    "- peak RSS ≤ 1/4 of Node's at concurrency {highest}: {:.1} / {:.1} MiB = {ratio:.2}× — {}",
                    rm as f64 / 1024.0,
                    nm as f64 / 1024.0,
                    mark(ratio <= 0.25)
                );
            }
        }
        for c in &concs {
            if let (Some(k), Some(e)) = (
                self.find(Target::Receiver, *c),
                self.find(Target::ReceiverEntra, *c),
            ) {
                let _ = writeln!(
                    s,
                    "- Entra ID with a warm token cache vs the account key at concurrency {c}: p50 {:.3} vs {:.3} ms ({:+.3} ms per event), throughput {:.0} vs {:.0} req/s = {:.2}×; {} token(s) issued in the whole run",
                    e.p50_us / 1000.0,
                    k.p50_us / 1000.0,
                    (e.p50_us - k.p50_us) / 1000.0,
                    e.rps(),
                    k.rps(),
                    e.rps() / k.rps(),
                    self.tokens_issued
                );
            }
            if let (Some(r), Some(n)) =
                (self.find(Target::Receiver, *c), self.find(Target::Node, *c))
            {
                let _ = writeln!(
                    s,
                    "- vs Node at concurrency {c}: p99 {:.2} vs {:.2} ms ({}), throughput {:.0} vs {:.0} req/s = {:.2}× ({})",
                    r.p99_us / 1000.0,
                    n.p99_us / 1000.0,
                    if r.p99_us < n.p99_us { "below: met" } else { "not below: NOT met" },
                    r.rps(),
                    n.rps(),
                    r.rps() / n.rps(),
                    if r.rps() >= n.rps() { "not below: met" } else { "below: NOT met" }
                );
            }
        }
        let c = self.component;
        let wasm = c["wasm_bytes"].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            s,
            "- .wasm ≤ 350 KiB: {:.1} KiB — {}",
            wasm / 1024.0,
            mark(wasm <= 350.0 * 1024.0)
        );
        let ih = c["instantiate_handle"]["median_ns"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let _ = writeln!(
            s,
            "- instantiate + handle without I/O ≤ 50 µs median: {:.1} µs — {}",
            ih / 1e3,
            mark(ih <= 50_000.0)
        );
        if let Some((name, ns)) = self
            .signing
            .iter()
            .find(|(n, _)| n.contains("authorization"))
        {
            let _ = writeln!(
                s,
                "- signing ≤ 2 µs: {name} {ns:.0} ns — {}",
                mark(*ns <= 2000.0)
            );
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "machine": self.machine,
            "load_average": {"start": self.load.0, "end": self.load.1},
            "duration_s": self.duration,
            "warmup_s": self.warmup,
            "store_keep_alive": self.store_keep_alive,
            "runs": self.measurements.iter().map(|m| json!({
                "target": m.target.key(),
                "concurrency": m.concurrency,
                "result": m.result.to_json(),
            })).collect::<Vec<_>>(),
            "component": self.component,
            "wasm_opt": self.optimized,
            "component_not_kept_resident": self.not_kept_resident,
            "signing_ns": self.signing.iter().map(|(n, v)| json!({"name": n, "median_ns": v})).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_divan_medians() {
        let text = "\
signing                      fastest       │ slowest       │ median        │ mean          │ samples │ iters
├─ authorization             1.104 µs      │ 3.26 µs       │ 1.125 µs      │ 1.17 µs       │ 100     │ 1600
├─ signature                 912.1 ns      │ 1.5 µs        │ 930.5 ns      │ 950 ns        │ 100     │ 3200
╰─ create_document_request   2.5 µs        │ 4 µs          │ 2.6 µs        │ 2.7 µs        │ 100     │ 800
";
        let rows = parse_divan(text);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].0, "authorization");
        assert!((rows[0].1 - 1125.0).abs() < 0.01);
        assert_eq!(rows[1].0, "signature");
        assert!((rows[1].1 - 930.5).abs() < 0.01);
        assert_eq!(rows[2].0, "create_document_request");
    }
}
