//! Its own test binary: it changes the process environment.

#[test]
fn a_missing_install_panics_telling_to_run_npm_ci() {
    std::env::set_var(
        acr_webhook_testkit::COSMOS_CLI_ENV,
        "/nonexistent/node_modules/@vercel/cosmosdb-server/lib/cli.js",
    );
    let err = std::panic::catch_unwind(acr_webhook_testkit::CosmosStore::start).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("npm ci"), "{msg}");
    assert!(msg.contains("/nonexistent/"), "{msg}");
}

#[test]
fn the_repository_root_is_the_directory_with_spin_toml() {
    let root = acr_webhook_testkit::repo_root();
    assert!(root.join("spin.toml").is_file());
    assert!(root.join("crates/testkit").is_dir());
}
