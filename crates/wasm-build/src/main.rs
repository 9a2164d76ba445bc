//! `wasm-build`: builds the Spin component the one way both `spin build` (spin.toml's build
//! command) and `make wasm` run it, so that Spin users deploy the bytes the tests tested.
//!
//! 1. `cargo build --target wasm32-wasip1 --release -p acr-webhook` (cargo's own output);
//! 2. drops the `component-type` custom sections the component does not need (see
//!    [`REMOVED_SECTIONS`]); every other section is copied byte for byte, in order;
//! 3. `wasm-opt -Oz` when binaryen's `wasm-opt` is on the PATH; without it, says so and ships
//!    the module unoptimized (a machine with only Rust and the Spin CLI still builds);
//! 4. writes the result where spin.toml's `source` says, atomically (a temporary file renamed
//!    over it).
//!
//! `wasm-opt` takes seconds, so its result is kept in the cargo target directory under
//! `wasm-build/`, named by the SHA-256 of its input, options and wasm-opt version: an unchanged
//! module is not optimized again. Deleting that folder forces a fresh run (the test that compares `spin build` with
//! `make wasm` does).
//!
//! Usage (what spin.toml's build command and `make wasm` run, from the repository root):
//! `cargo run --quiet --profile host -p acr-webhook-wasm-build`

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use acr_webhook_wasm_build::{wasm_opt_oz, WASM_OPT_FEATURES};
use glob::Pattern;
use sha2::{Digest, Sha256};

/// The package built for wasm32-wasip1 (the workspace root).
const PACKAGE: &str = "acr-webhook";
/// The spin.toml component whose `source` receives the result.
const COMPONENT: &str = "acr-webhook";

/// Custom sections the component does not need (glob patterns: `*` matches any text): the `wasi` crate's own
/// worlds (34 KB; spin-sdk depends on the crate, which embeds them, and they only repeat
/// interfaces other sections describe), and spin-sdk's description of the whole Spin platform
/// (39 KB), of which the component imports only `fermyon:spin/variables` and
/// `fermyon:spin/key-value`, described by its own small section (src/lib.rs,
/// `spin_variables_world`, from `wit/`). What is left describes every import the module has, so
/// Spin still makes a component of it (crates/cli/tests/component.rs checks).
const REMOVED_SECTIONS: [&str; 2] = [
    "component-type:*rust-wasi-from-crates-io*",
    "component-type:*:spin:up@*:platform:*",
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasm-build: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let root = repo_root()?;
    let built = cargo_build(&root)?;
    let output = root.join(source_in_manifest(&root.join("spin.toml"))?);
    let module = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
    println!("cargo built {} bytes", module.len());
    let (stripped, removed) = remove_custom_sections(&module, &REMOVED_SECTIONS)?;
    for (name, size) in &removed {
        println!("removed custom section `{name}` ({size} bytes)");
    }
    let shipped = if let Some(wasm_opt) = wasm_opt_version() {
        let cache = built
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .map(|target| target.join("wasm-build"))
            .ok_or("cargo's output is not inside a target directory")?;
        optimize_cached(&stripped, &wasm_opt, &cache)?
    } else {
        println!(
            "note: wasm-opt (binaryen) not found on the PATH: the module is shipped unoptimized \
             (install binaryen for a smaller component)"
        );
        stripped
    };
    write_atomically(&output, &shipped)?;
    println!(
        "component: {} {} bytes",
        output.strip_prefix(&root).unwrap_or(&output).display(),
        shipped.len()
    );
    Ok(())
}

/// The repository root: two levels above this crate's directory as `cargo run` gives it at run
/// time. The path compiled in is only a fallback: cargo does not rebuild a workspace that
/// moved, so a target directory shared by two checkouts may run a binary built in the other.
fn repo_root() -> Result<PathBuf, String> {
    let package = std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    let root = Path::new(&package).join("../..");
    root.canonicalize()
        .map_err(|e| format!("the repository root {}: {e}", root.display()))
}

/// Runs cargo for wasm32-wasip1 and returns the `.wasm` it reports (cargo's JSON messages name
/// the file, wherever the target directory is).
fn cargo_build(root: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--target",
            "wasm32-wasip1",
            "--release",
            "-p",
            PACKAGE,
        ])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut wasm = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading cargo's output: {e}"))?;
        if let Some(path) = artifact_wasm(&line) {
            wasm = Some(path);
        }
    }
    let status = child.wait().map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    wasm.ok_or_else(|| format!("cargo reported no .wasm for {PACKAGE}"))
}

/// The `.wasm` file of a `compiler-artifact` message for [`PACKAGE`]'s library, if `line` is one.
fn artifact_wasm(line: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" || message["target"]["name"] != "acr_webhook" {
        return None;
    }
    message["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

/// `[component.acr-webhook] source` in spin.toml: where Spin loads the module from.
fn source_in_manifest(manifest: &Path) -> Result<PathBuf, String> {
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", manifest.display()))?;
    table
        .get("component")
        .and_then(|c| c.get(COMPONENT))
        .and_then(|c| c.get("source"))
        .and_then(|s| s.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| format!("{}: no [component.{COMPONENT}] source", manifest.display()))
}

/// Reads an unsigned LEB128 number at `*pos`, moving past it.
fn leb128(data: &[u8], pos: &mut usize) -> Option<usize> {
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = *data.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte < 0x80 {
            return usize::try_from(value).ok();
        }
    }
}

/// Name and size in bytes of each custom section removed.
type Removed = Vec<(String, usize)>;

/// The module without the custom sections whose names match one of `patterns`, and the names
/// and sizes of the sections removed.
fn remove_custom_sections(module: &[u8], patterns: &[&str]) -> Result<(Vec<u8>, Removed), String> {
    const HEADER: &[u8] = b"\0asm\x01\0\0\0";
    if !module.starts_with(HEADER) {
        return Err("not a WebAssembly core module".into());
    }
    let patterns = patterns
        .iter()
        .map(|p| Pattern::new(p).map_err(|e| format!("section pattern {p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = HEADER.to_vec();
    let mut removed = Vec::new();
    let mut pos = HEADER.len();
    while pos < module.len() {
        let start = pos;
        let id = module[pos];
        pos += 1;
        let truncated = || format!("truncated section at byte {start}");
        let size = leb128(module, &mut pos).ok_or_else(truncated)?;
        let end = pos.checked_add(size).filter(|&e| e <= module.len());
        let end = end.ok_or_else(truncated)?;
        if id == 0 {
            let mut at = pos;
            let name_len = leb128(module, &mut at).ok_or_else(truncated)?;
            let name = at
                .checked_add(name_len)
                .filter(|&e| e <= end)
                .map(|e| String::from_utf8_lossy(&module[at..e]).into_owned())
                .ok_or_else(truncated)?;
            if patterns.iter().any(|p| p.matches(&name)) {
                removed.push((name, end - start));
                pos = end;
                continue;
            }
        }
        out.extend_from_slice(&module[start..end]);
        pos = end;
    }
    Ok((out, removed))
}

/// `wasm-opt --version`'s output, `None` when there is no working wasm-opt on the PATH.
fn wasm_opt_version() -> Option<String> {
    let out = Command::new("wasm-opt")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `wasm-opt -Oz` of `module`, from `cache` when this very input was optimized before by this
/// very wasm-opt with these options (all three make the cache key).
fn optimize_cached(module: &[u8], wasm_opt: &str, cache: &Path) -> Result<Vec<u8>, String> {
    let mut key = Sha256::new();
    key.update(wasm_opt.as_bytes());
    key.update(WASM_OPT_FEATURES.join(" ").as_bytes());
    key.update(module);
    let digest: String = key.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let cached = cache.join(format!("{digest}.wasm"));
    if let Ok(bytes) = std::fs::read(&cached) {
        println!("wasm-opt -Oz: unchanged input, result reused");
        return Ok(bytes);
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let input = cache.join(format!("{digest}.in.wasm"));
    std::fs::write(&input, module).map_err(|e| format!("{}: {e}", input.display()))?;
    let optimized = cache.join(format!("{digest}.opt.wasm"));
    let optimizing = wasm_opt_oz(&input, &optimized);
    let _ = std::fs::remove_file(&input);
    optimizing?;
    let bytes = std::fs::read(&optimized).map_err(|e| format!("{}: {e}", optimized.display()))?;
    // Only the latest result is kept.
    if let Ok(entries) = std::fs::read_dir(cache) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    write_atomically(&cached, &bytes)?;
    println!("wasm-opt -Oz done");
    Ok(bytes)
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so that a
/// reader never sees a half-written module (and cargo's own file, when `path` is it, is
/// replaced rather than written through its hard link).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A custom section: id 0, size, name length, name, payload.
    fn custom(name: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(payload);
        let mut section = vec![0, body.len() as u8];
        section.extend(body);
        section
    }

    #[test]
    fn the_removed_sections_are_the_wasi_crates_worlds_and_spins_platform() {
        let removed = |name: &str| {
            REMOVED_SECTIONS
                .iter()
                .any(|p| Pattern::new(p).unwrap().matches(name))
        };
        assert!(removed(
            "component-type:wit-bindgen:0.51.0:spin:up@3.6.0:platform:encoded world"
        ));
        assert!(removed(
            "component-type:wit-bindgen:0.24.0:bindings:encoded worldrust-wasi-from-crates-io"
        ));
        assert!(!removed(
            "component-type:wit-bindgen:0.51.0:fermyon:spin@2.0.0:host:encoded world"
        ));
        assert!(!removed("component-type:spin:up@3.6.0:platform"));
    }

    #[test]
    fn only_matching_custom_sections_are_removed_and_the_rest_is_copied() {
        let type_section = [1u8, 4, 1, 0x60, 0, 0];
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend(custom("keep:me", b"123"));
        module.extend(type_section);
        module.extend(custom("drop:me", b"4567"));
        let (out, removed) = remove_custom_sections(&module, &["drop:*"]).unwrap();
        let mut want = b"\0asm\x01\0\0\0".to_vec();
        want.extend(custom("keep:me", b"123"));
        want.extend(type_section);
        assert_eq!(out, want);
        assert_eq!(removed, [("drop:me".to_string(), 14)]);
    }

    #[test]
    fn broken_modules_are_errors() {
        assert!(remove_custom_sections(b"not wasm", &[]).is_err());
        let mut truncated = b"\0asm\x01\0\0\0".to_vec();
        truncated.extend([0, 50, 1]);
        assert!(remove_custom_sections(&truncated, &[]).is_err());
    }

    #[test]
    fn the_manifest_names_the_source() {
        let source = source_in_manifest(&repo_root().unwrap().join("spin.toml")).unwrap();
        assert_eq!(
            source,
            Path::new("target/wasm32-wasip1/release/acr_webhook.wasm")
        );
    }
}
