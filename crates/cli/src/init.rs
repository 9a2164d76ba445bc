//! `acr-webhook init`: create the database and the container the app's variables name, with
//! the configured partition key, over the same signed REST code the component uses. Succeeds
//! when they exist already, and finishes with the same signed read a `ping` does.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use acr_webhook_core::cosmos::x_ms_date;
use acr_webhook_core::StoreConfig;
use anyhow::{bail, Context, Result};

use crate::manifest::DEFAULT_MANIFEST_FILE;
use crate::store_client::NativeHost;

/// Timeout of each call to Cosmos DB.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `acr-webhook init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The application manifest: a spin.toml file, or a folder that contains one.
    #[arg(long = "from", short = 'f', value_name = "MANIFEST", default_value = DEFAULT_MANIFEST_FILE)]
    pub from: PathBuf,

    /// Sets an application variable, NAME=VALUE; may be repeated (as for `up`).
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    pub variables: Vec<String>,
}

/// Creates what is missing, then checks the container answers a signed read.
pub fn run(args: InitArgs) -> Result<()> {
    let app = crate::up::load_app(&args.from, &args.variables)?;
    let store = StoreConfig::from_lookup(|name| app.variables.get(name).ok().map(str::to_owned))
        .context("the app's Cosmos DB variables are not usable")?;
    let host = NativeHost::new();
    let call = |what: &str, request: http::Request<Vec<u8>>| {
        host.send_blocking(request, CALL_TIMEOUT).with_context(|| {
            format!(
                "{what}: Cosmos DB at {} could not be reached",
                store.endpoint.as_str()
            )
        })
    };

    let db = call("create database", store.create_database_request(&date()))?;
    report("database", &store.database, db.status(), db.body())?;
    let coll = call("create container", store.create_container_request(&date()))?;
    report("container", &store.container, coll.status(), coll.body())?;
    let check = call("read container", store.read_container_request(&date()))?;
    if !check.status().is_success() {
        bail!(
            "the signed read of dbs/{}/colls/{} answered {}",
            store.database,
            store.container,
            check.status()
        );
    }
    println!(
        "ready: dbs/{}/colls/{} (partition key {}) answers signed reads",
        store.database,
        store.container,
        store.partition_key_path.as_str()
    );
    Ok(())
}

fn date() -> String {
    x_ms_date(SystemTime::now())
}

fn report(kind: &str, id: &str, status: http::StatusCode, body: &[u8]) -> Result<()> {
    match status.as_u16() {
        201 => println!("created {kind} {id}"),
        409 => println!("{kind} {id} exists already"),
        _ => bail!(
            "creating {kind} {id}: Cosmos DB answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ),
    }
    Ok(())
}
