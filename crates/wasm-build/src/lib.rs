//! What `wasm-build` shares with the benchmark (crates/bench), which optimizes the module
//! the same way to measure it: binaryen's `wasm-opt -Oz` with the features rustc's output
//! uses.

use std::path::Path;
use std::process::Command;

/// The features rustc's wasm32-wasip1 output uses, which binaryen must be told about (binaryen
/// 108, Debian's, enables fewer by default than rustc emits).
pub const WASM_OPT_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// Runs `wasm-opt -Oz` (with [`WASM_OPT_FEATURES`]) on the module `input`, writing `output`;
/// the error says whether wasm-opt could not start or failed.
pub fn wasm_opt_oz(input: &Path, output: &Path) -> Result<(), String> {
    let status = Command::new("wasm-opt")
        .arg("-Oz")
        .args(WASM_OPT_FEATURES)
        .arg(input)
        .arg("-o")
        .arg(output)
        .status()
        .map_err(|e| format!("cannot run wasm-opt: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("wasm-opt failed ({status})"))
    }
}
