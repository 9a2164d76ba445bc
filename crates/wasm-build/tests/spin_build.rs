//! `spin build` gives the bytes the tests test: spin.toml's build command, run directly (as
//! Spin runs it, with `sh -c` in the manifest's folder, without Spin), writes a module identical
//! to the one `make wasm` left (`make test` runs `make wasm` before the tests), and `make wasm`
//! runs that very command.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    // The package directory cargo gives the running test: a binary built in another checkout
    // that shares the target directory has that checkout's path compiled in.
    let package = std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    Path::new(&package).join("../..").canonicalize().unwrap()
}

fn manifest() -> toml::Table {
    std::fs::read_to_string(repo_root().join("spin.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

fn build_command(manifest: &toml::Table) -> String {
    manifest["component"]["acr-webhook"]["build"]["command"]
        .as_str()
        .expect("a single build command")
        .to_owned()
}

#[test]
fn make_wasm_runs_spin_tomls_build_command() {
    let command = build_command(&manifest());
    let makefile = std::fs::read_to_string(repo_root().join("Makefile")).unwrap();
    let recipe = makefile
        .lines()
        .find_map(|l| l.strip_prefix("WASM_BUILD := "))
        .expect("the Makefile defines WASM_BUILD");
    assert_eq!(recipe, command);
    assert!(
        makefile.contains("wasm: setup-rust setup-binaryen\n\t$(WASM_BUILD)\n"),
        "make wasm runs $(WASM_BUILD) and nothing else"
    );
}

#[test]
fn spin_tomls_build_command_writes_the_bytes_make_wasm_wrote() {
    let root = repo_root();
    let manifest = manifest();
    let source = root.join(
        manifest["component"]["acr-webhook"]["source"]
            .as_str()
            .unwrap(),
    );
    let from_make = std::fs::read(&source).unwrap_or_else(|e| {
        panic!("{}: {e} (run `make wasm` first)", source.display());
    });
    // No reuse of an earlier wasm-opt result: the command optimizes cargo's module afresh.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    let _ = std::fs::remove_dir_all(target.join("wasm-build"));

    let stdout = spin_build(&root, &manifest, None);
    let with_wasm_opt = Command::new("wasm-opt").arg("--version").output().is_ok();
    if with_wasm_opt {
        assert!(stdout.contains("wasm-opt -Oz done"), "{stdout}");
    } else {
        assert!(stdout.contains("wasm-opt (binaryen) not found"), "{stdout}");
    }
    assert!(stdout.contains("removed custom section"), "{stdout}");
    let from_spin_build = std::fs::read(&source).unwrap();
    assert!(
        from_spin_build == from_make,
        "spin build wrote {} bytes, make wasm {}",
        from_spin_build.len(),
        from_make.len()
    );
    if !with_wasm_opt {
        return;
    }

    // On a machine without a working wasm-opt, it says so and ships the module unoptimized
    // (a `wasm-opt` that fails stands for the missing one here: cargo and the linker stay on
    // the PATH).
    let fake = std::env::temp_dir().join(format!("acr-webhook-no-wasm-opt-{}", std::process::id()));
    std::fs::create_dir_all(&fake).unwrap();
    let broken = fake.join("wasm-opt");
    std::fs::write(&broken, "#!/bin/sh\nexit 127\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let stdout = spin_build(&root, &manifest, Some(&path));
    let _ = std::fs::remove_dir_all(&fake);
    let unoptimized = std::fs::read(&source).unwrap();
    // Put the tested module back (wasm-opt's result is reused) before asserting.
    spin_build(&root, &manifest, None);
    assert!(
        stdout.contains(
            "wasm-opt (binaryen) not found on the PATH: the module is shipped unoptimized"
        ),
        "{stdout}"
    );
    assert!(unoptimized.starts_with(b"\0asm\x01\0\0\0"));
    assert!(
        unoptimized.len() > from_make.len(),
        "{} bytes",
        unoptimized.len()
    );
    assert!(std::fs::read(&source).unwrap() == from_make);
}

/// Runs spin.toml's build command as Spin does (`sh -c` in the manifest's folder), with `path`
/// as PATH when given; returns its standard output.
fn spin_build(root: &Path, manifest: &toml::Table, path: Option<&str>) -> String {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(build_command(manifest))
        .current_dir(root);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    stdout
}
