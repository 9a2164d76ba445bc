//! deploy/prometheus/: the alerting rules are valid (`promtool check rules`) and fire exactly
//! when their unit tests say (`promtool test rules`): for `acr-webhook up`'s own metrics
//! (alerts.yaml) and for the span metrics the OpenTelemetry Collector derives from Spin's
//! traces (alerts-spin.yaml, with deploy/otel/collector.yaml).
//!
//! promtool comes with Debian's `prometheus` package, which `make test` installs
//! (`make setup-prometheus`); a run without it fails and says so, as the end-to-end tests do
//! without wasmtime.

use std::path::PathBuf;
use std::process::Command;

fn deploy_dir() -> PathBuf {
    // The directory cargo gives at run time: the one compiled in can be another checkout's.
    let package = std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    [package.as_str(), "..", "..", "deploy", "prometheus"]
        .iter()
        .collect()
}

/// `promtool ARGS` in deploy/prometheus/, which must succeed; its output.
fn promtool(args: &[&str]) -> String {
    let promtool = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let out = Command::new(&promtool)
        .args(args)
        .current_dir(deploy_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; install Debian's `prometheus` package (`make \
                 setup-prometheus`) or point PROMTOOL at a promtool",
                promtool.to_string_lossy()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn the_rules_are_valid() {
    for (file, rules) in [("alerts.yaml", 3), ("alerts-spin.yaml", 2)] {
        let out = promtool(&["check", "rules", file]);
        assert!(
            out.contains(&format!("SUCCESS: {rules} rules found")),
            "{file}: {out}"
        );
    }
}

#[test]
fn the_rules_fire_as_their_unit_tests_say() {
    for file in ["alerts.test.yaml", "alerts-spin.test.yaml"] {
        let out = promtool(&["test", "rules", file]);
        assert!(out.contains("SUCCESS"), "{file}: {out}");
    }
}
