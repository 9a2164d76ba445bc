//! Compiling the component in a child process, so that the serving process never runs
//! Cranelift.
//!
//! Compiling the component (componentizing it with `wit-component`, then Cranelift on all
//! cores) leaves the process that did it holding what it touched: 16 MiB of the compiler's
//! own machine code paged in from this binary and 13 MiB of freed allocator arenas that
//! glibc keeps. None of it is used again, but all of it stays in the resident set for as long
//! as `acr-webhook up` runs (53 MiB idle, against 16 MiB when the child compiles;
//! BENCHMARKS.md, the 1af5519 run of 2026-11-29).
//!
//! So `up` runs this same executable as `acr-webhook precompile --component PATH`, which
//! writes the compiled component ([`Engine::precompile_component`], with an engine configured
//! exactly as the server's) to its standard output, and the server loads that with
//! [`Component::deserialize`]. A component the child cannot compile is reported with the
//! child's error, as `up` would report it compiling in its own process. When the child cannot
//! be started or its output does not load (for example a binary of another wasmtime version
//! put in place of this one), `up` says so in a warning and compiles in its own process as
//! before.

use crate::componentize;
use crate::engine::{new_engine_with, EngineOptions};
use anyhow::{anyhow, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The hidden subcommand's name.
pub const SUBCOMMAND: &str = "precompile";

/// `acr-webhook precompile`: what the child runs.
#[derive(Debug, Args)]
pub struct PrecompileArgs {
    /// The component (or wasip1 core module, componentized first) to compile.
    #[arg(long)]
    pub component: PathBuf,
    /// The engine option of `up` that changes code generation (see [`EngineOptions`]).
    #[arg(long)]
    pub perfmap: bool,
    /// Bytes of each pooled memory and table kept resident (part of the engine's
    /// configuration, passed so that the child's engine is the server's).
    #[arg(long)]
    pub keep_resident: usize,
}

/// Compiles `args.component` and writes the serialized result to standard output.
pub fn run(args: PrecompileArgs) -> Result<()> {
    let (engine, _) = new_engine_with(EngineOptions {
        perfmap: args.perfmap,
        keep_resident: args.keep_resident,
        ..EngineOptions::default()
    })?;
    let serialized = compile(&engine, &args.component)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&serialized)
        .and_then(|()| stdout.flush())
        .context("cannot write the compiled component")?;
    Ok(())
}

/// Reads, componentizes and compiles `source` into wasmtime's serialized form.
fn compile(engine: &Engine, source: &Path) -> Result<Vec<u8>> {
    let bytes = componentize::read_component_bytes(source)?;
    engine
        .precompile_component(&bytes)
        .map_err(|e| anyhow!("cannot compile {}: {e:?}", source.display()))
}

/// The running executable, for the child: on Linux `/proc/self/exe` names the very file this
/// process runs even after it was replaced or deleted on disk.
fn this_executable() -> Result<PathBuf> {
    let proc_self = Path::new("/proc/self/exe");
    if proc_self.exists() {
        return Ok(proc_self.to_path_buf());
    }
    std::env::current_exe().context("cannot locate the running executable")
}

/// Why the child's compilation was not used.
#[derive(Debug)]
pub enum ChildCompileError {
    /// The compiler ran and reported an error about the component itself: compiling it in
    /// this process would fail the same way, so this is the error to report.
    Component(anyhow::Error),
    /// The child could not run or its output did not load: compiling in this process is
    /// the way forward.
    Unavailable(anyhow::Error),
}

/// Compiles `source` in a child process of this executable and loads the result into
/// `engine`, which must have been made with `options`.
pub fn load_compiled_in_child(
    engine: &Engine,
    options: EngineOptions,
    source: &Path,
) -> Result<Component, ChildCompileError> {
    let unavailable = ChildCompileError::Unavailable;
    let mut command = Command::new(this_executable().map_err(unavailable)?);
    command
        .arg(SUBCOMMAND)
        .arg("--component")
        .arg(source)
        .arg(format!("--keep-resident={}", options.keep_resident))
        // The compiler needs nothing from the environment, and `up`'s holds the app's
        // secrets (SPIN_VARIABLE_*): the child does not get it.
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if options.perfmap {
        command.arg("--perfmap");
    }
    let output = command
        .output()
        .context("cannot start the compiler process")
        .map_err(unavailable)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        // `main` prints `Error: …` and exits 1 for an error it returns: the component's.
        Some(1) => {
            let message = stderr.trim();
            let message = message.strip_prefix("Error: ").unwrap_or(message);
            return Err(ChildCompileError::Component(anyhow!("{message}")));
        }
        _ => {
            return Err(unavailable(anyhow!(
                "the compiler process failed ({}): {}",
                output.status,
                stderr.trim()
            )))
        }
    }
    // SAFETY: `Component::deserialize` trusts its input to be wasmtime's own output. These
    // bytes come straight from this very executable (the same file, via /proc/self/exe),
    // through a pipe no other process holds, and wasmtime still rejects an artifact made by
    // another version or engine configuration.
    unsafe { Component::deserialize(engine, &output.stdout) }
        .map_err(|e| unavailable(anyhow!("the compiled component does not load: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_component_is_an_error_naming_it() {
        let (engine, _) = new_engine_with(EngineOptions::default()).unwrap();
        let err = compile(&engine, Path::new("/nonexistent/component.wasm"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/component.wasm"), "{err}");
    }
}
