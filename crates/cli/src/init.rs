//! `acr-webhook init`: create the database and the container the app's variables name, with
//! the configured partition key, over the same signed REST code the component uses; on a
//! container that exists already (created by `az` or the Azure Function this replaces), add
//! the composite index `GET /events` orders by to its indexing policy, keeping everything else
//! in it. Prints the container's time to live, and with `--retention-days` sets it
//! ([`retention`], a function of its own). Finishes with the same signed read a `ping` does.
//! `--dry-run` reads and prints what would change, and changes nothing.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use acr_webhook_core::cosmos::entra::{account_name, role_assignment_command};
use acr_webhook_core::cosmos::Container;
use acr_webhook_core::cosmos::{x_ms_date, CosmosAuth, CosmosFailure, Credential};
use acr_webhook_core::indexing::{self, PolicyPlan, POLICY_FILE, READ_ORDER_INDEX};
use acr_webhook_core::retention::{self, Retention, RetentionPlan};
use acr_webhook_core::retry::RetryBudget;
use acr_webhook_core::signer::{self, Fetch};
use anyhow::{bail, Context, Result};
use http::StatusCode;
use serde_json::Value;

use crate::manifest::DEFAULT_MANIFEST_FILE;
use crate::native_host::{block_on, NativeHost};

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

    /// Reads the database and the container and prints what init would create or change,
    /// without changing anything.
    #[arg(long)]
    pub dry_run: bool,

    /// How long stored events are kept: a number of days (the container's time to live,
    /// `defaultTtl`; Cosmos DB then deletes each event that long after it was written, for
    /// good), or `off` to keep them until deleted. Without it the time to live is left as it
    /// is, and printed.
    #[arg(long, value_name = "DAYS|off", allow_negative_numbers = true)]
    pub retention_days: Option<Retention>,
}

/// Creates what is missing, adds the read API's composite index where it is missing, then
/// checks the container answers a signed read.
pub fn run(args: InitArgs) -> Result<()> {
    let app = crate::up::load_app(&args.from, &args.variables)?;
    let store = acr_webhook_core::config::container_from_lookup(|name| {
        app.variables.get(name).ok().map(str::to_owned)
    })
    .context("the app's Cosmos DB variables are not usable")?;
    let host = NativeHost::new();
    let budget = RetryBudget {
        total: CALL_TIMEOUT,
    };
    let credential = block_on(signer::credential(
        &store,
        budget,
        &host,
        SystemTime::now(),
        Fetch::Fresh,
    ))
    .map_err(|failure| anyhow::anyhow!("{failure}"))
    .context("no credential for Cosmos DB")?;
    let cosmos = Cosmos {
        host,
        store: &store,
        credential,
    };
    if args.dry_run {
        return dry_run(&cosmos, args.retention_days);
    }
    if let CosmosAuth::Entra(_) = store.auth {
        return check_with_entra(&cosmos, args.retention_days);
    }

    let db = cosmos.call("create database", store.create_database_request(&date()))?;
    report("database", &store.database, &db)?;
    let coll = cosmos.call("create container", store.create_container_request(&date()))?;
    report("container", &store.container, &coll)?;

    let container = cosmos.read_container()?;
    match plan(&store, &container)? {
        PolicyPlan::Ready => println!(
            "indexing policy of {}: has the composite index {READ_ORDER_INDEX} that GET /events \
             orders by; nothing to change",
            cosmos.link()
        ),
        PolicyPlan::Add {
            container,
            etag,
            kept,
        } => {
            cosmos.replace_container("updating the indexing policy", &container, etag)?;
            println!(
                "indexing policy of {}: added the composite index {READ_ORDER_INDEX} that GET \
                 /events orders by, and kept its {kept} as they were; Cosmos DB builds the new \
                 index online (compositeIndexes now: {})",
                cosmos.link(),
                container["indexingPolicy"]["compositeIndexes"]
            );
            let after = cosmos.read_container()?;
            if !after
                .get("indexingPolicy")
                .is_some_and(indexing::serves_read_order)
            {
                bail!(
                    "Cosmos DB accepted the new indexing policy of {}, but reading the container \
                     back does not show the composite index {READ_ORDER_INDEX}",
                    cosmos.link()
                );
            }
        }
        PolicyPlan::Blocked(reason) => bail!(
            "{} cannot serve GET /events, and init did not change it: {reason}",
            cosmos.link()
        ),
    }
    retention(&cosmos, args.retention_days)?;
    println!(
        "ready: {} (partition key {}) answers signed reads",
        cosmos.link(),
        store.partition_key_path.as_str()
    );
    Ok(())
}

/// `cosmos_auth=entra`: data-plane roles cannot create databases or containers or change an
/// indexing policy (Cosmos DB answers 403, sub-status 5300), so init reads what is there and
/// checks it as for the key; what is missing or must change is printed as the `az` commands
/// that do it (run by someone with control-plane rights), with the role assignment the
/// receiver's identity needs, and init exits non-zero until they have been run.
fn check_with_entra(cosmos: &Cosmos<'_>, wanted: Option<Retention>) -> Result<()> {
    let store = cosmos.store;
    let account = account_name(store.endpoint.as_str());
    let rg = "<resource-group>";
    println!(
        "cosmos_auth=entra: data-plane roles cannot create databases or containers, so init \
         only reads and checks them"
    );
    let exists = |what: &str, answer: &http::Response<Vec<u8>>| -> Result<bool> {
        match answer.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => {
                let failure = refusal(answer);
                if failure.is_role_missing() {
                    bail!(
                        "reading {what}: {failure}\nthe identity needs the data-plane role Cosmos \
                         DB Built-in Data Contributor:\n  {}",
                        role_assignment_command(store.endpoint.as_str())
                    );
                }
                bail!("reading {what}: {failure}")
            }
        }
    };
    let db = cosmos.call("read database", store.read_database_request(&date()))?;
    let database = exists(&format!("database {}", store.database), &db)?;
    let container = if database {
        let answer = cosmos.call("read container", store.read_container_request(&date()))?;
        exists(&cosmos.link(), &answer)?.then_some(answer)
    } else {
        None
    };
    let Some(answer) = container else {
        let mut commands = Vec::new();
        if !database {
            commands.push(format!(
                "az cosmosdb sql database create --account-name {account} --resource-group {rg} \
                 --name {}",
                store.database
            ));
        }
        commands.push(format!(
            "az cosmosdb sql container create --account-name {account} --resource-group {rg} \
             --database-name {} --name {} --partition-key-path {} --idx @{POLICY_FILE}",
            store.database,
            store.container,
            store.partition_key_path.as_str()
        ));
        commands.push(role_assignment_command(store.endpoint.as_str()));
        bail!(
            "{} does not exist, and an Entra ID identity cannot create it; create it (and let \
             the receiver's identity write to it) with:\n  {}\nthen run init again",
            cosmos.link(),
            commands.join("\n  ")
        );
    };
    let container = container_json(&answer)?;
    let path = &container["partitionKey"]["paths"][0];
    if path.as_str() != Some(store.partition_key_path.as_str()) {
        bail!(
            "{} is partitioned by {path}, but partition_key_path is {}: set the variable to the \
             container's path",
            cosmos.link(),
            store.partition_key_path.as_str()
        );
    }
    match plan(store, &container)? {
        PolicyPlan::Ready => {}
        PolicyPlan::Add { .. } => bail!(
            "{} lacks the composite index {READ_ORDER_INDEX} that GET /events orders by, and an \
             Entra ID identity cannot change an indexing policy; add it with:\n  az cosmosdb \
             sql container update --account-name {account} --resource-group {rg} \
             --database-name {} --name {} --idx @{POLICY_FILE}\n(that replaces the whole policy \
             with the file's: `acr-webhook init --dry-run` shows the policy that keeps the \
             container's other indexes), then run init again",
            cosmos.link(),
            store.database,
            store.container
        ),
        PolicyPlan::Blocked(reason) => {
            bail!("{} cannot serve GET /events: {reason}", cosmos.link())
        }
    }
    let ttl = in_force(cosmos, &container)?;
    match wanted.map(|w| retention::plan(&container, w)).transpose() {
        Ok(None | Some(RetentionPlan::Ready(_))) => {
            println!("time to live of {}: {ttl}", cosmos.link())
        }
        Ok(Some(RetentionPlan::Change { to, .. })) => {
            let how = match to.default_ttl() {
                Some(seconds) => format!(
                    "az cosmosdb sql container update --account-name {account} --resource-group \
                     {rg} --database-name {} --name {} --ttl {seconds}",
                    store.database, store.container
                ),
                None => "remove the container's defaultTtl (Azure portal: Settings, Time to \
                         Live, Off; `az ... --ttl -1` would leave it on without a default)"
                    .to_owned(),
            };
            bail!(
                "the time to live of {} is {ttl}; an Entra ID identity cannot change it (a \
                 control-plane operation); to make it {to}:\n  {how}",
                cosmos.link()
            )
        }
        Err(e) => return Err(e).with_context(|| cosmos.link()),
    }
    println!(
        "ready: {} (partition key {}) exists with the composite index GET /events needs, and \
         answers reads signed with an Entra ID token",
        cosmos.link(),
        store.partition_key_path.as_str()
    );
    Ok(())
}

/// `--dry-run`: the same reads, and what would be created or changed, in words.
fn dry_run(cosmos: &Cosmos<'_>, retention: Option<Retention>) -> Result<()> {
    let store = cosmos.store;
    println!("dry run: reading only, nothing is created or changed");
    let db = cosmos.call("read database", store.read_database_request(&date()))?;
    let database_exists = match db.status().as_u16() {
        200 => {
            println!("database {} exists", store.database);
            true
        }
        404 => {
            println!("would create database {}", store.database);
            false
        }
        _ => bail!("reading database {}: {}", store.database, refusal(&db)),
    };
    let answer = if database_exists {
        Some(cosmos.call("read container", store.read_container_request(&date()))?)
    } else {
        None
    };
    match answer {
        Some(answer) if answer.status() == StatusCode::OK => {
            println!("container {} exists", store.container);
            let container = container_json(&answer)?;
            match plan(store, &container)? {
                PolicyPlan::Ready => println!(
                    "indexing policy of {}: has the composite index {READ_ORDER_INDEX} that GET \
                     /events orders by; nothing to change",
                    cosmos.link()
                ),
                PolicyPlan::Add {
                    container, kept, ..
                } => println!(
                    "would add to the indexing policy of {}: the composite index \
                     {READ_ORDER_INDEX} that GET /events orders by, keeping its {kept} as they \
                     are; the policy would become:\n{}",
                    cosmos.link(),
                    serde_json::to_string_pretty(&container["indexingPolicy"])
                        .expect("a JSON value serializes")
                ),
                PolicyPlan::Blocked(reason) => bail!(
                    "{} cannot serve GET /events, and init would not change it: {reason}",
                    cosmos.link()
                ),
            }
            retention_dry_run(cosmos, &container, retention)?;
        }
        Some(answer) if answer.status() != StatusCode::NOT_FOUND => {
            bail!("reading {}: {}", cosmos.link(), refusal(&answer))
        }
        _ => {
            println!(
                "would create container {} (partition key {}) with the indexing policy of {POLICY_FILE}, \
                 which has the composite index {READ_ORDER_INDEX}",
                store.container,
                store.partition_key_path.as_str()
            );
            if let Some(wanted) = retention {
                println!("would set its time to live to {}", wanted.ttl());
            }
        }
    }
    println!("dry run: nothing was changed");
    Ok(())
}

/// The container's time to live: prints what is in force, and with `--retention-days` sets it
/// (a conditional replace of the container, everything else in it kept) and reads it back.
fn retention(cosmos: &Cosmos<'_>, wanted: Option<Retention>) -> Result<()> {
    let container = cosmos.read_container()?;
    let Some(wanted) = wanted else {
        println!(
            "time to live of {}: {} (unchanged; set it with --retention-days DAYS|off)",
            cosmos.link(),
            in_force(cosmos, &container)?
        );
        return Ok(());
    };
    match retention::plan(&container, wanted).with_context(|| cosmos.link())? {
        RetentionPlan::Ready(ttl) => println!(
            "time to live of {}: {ttl}; nothing to change",
            cosmos.link()
        ),
        RetentionPlan::Change {
            container,
            etag,
            from,
            to,
        } => {
            cosmos.replace_container("setting the time to live", &container, etag)?;
            let after = in_force(cosmos, &cosmos.read_container()?)?;
            if after != to {
                bail!(
                    "Cosmos DB accepted the time to live of {}, but reading the container back \
                     shows {after} instead of {to}",
                    cosmos.link()
                );
            }
            println!("time to live of {}: was {from}; now {to}", cosmos.link());
        }
    }
    Ok(())
}

/// `--dry-run`'s part of [`retention`]: what is in force and what would change.
fn retention_dry_run(
    cosmos: &Cosmos<'_>,
    container: &Value,
    wanted: Option<Retention>,
) -> Result<()> {
    let Some(wanted) = wanted else {
        println!(
            "time to live of {}: {} (would be left as it is)",
            cosmos.link(),
            in_force(cosmos, container)?
        );
        return Ok(());
    };
    match retention::plan(container, wanted).with_context(|| cosmos.link())? {
        RetentionPlan::Ready(ttl) => {
            println!(
                "time to live of {}: {ttl}; nothing to change",
                cosmos.link()
            )
        }
        RetentionPlan::Change { from, to, .. } => println!(
            "would change the time to live of {}: from {from} to {to}",
            cosmos.link()
        ),
    }
    Ok(())
}

fn in_force(cosmos: &Cosmos<'_>, container: &Value) -> Result<retention::Ttl> {
    retention::in_force(container).with_context(|| cosmos.link())
}

/// The store's signed REST calls, with errors that say what was being done.
struct Cosmos<'a> {
    host: NativeHost,
    store: &'a Container,
    credential: Credential,
}

impl Cosmos<'_> {
    fn call(
        &self,
        what: &str,
        mut request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>> {
        self.credential.sign(&mut request);
        self.host
            .send_blocking(request, CALL_TIMEOUT)
            .with_context(|| {
                format!(
                    "{what}: Cosmos DB at {} could not be reached",
                    self.store.endpoint.as_str()
                )
            })
    }

    /// `dbs/{db}/colls/{coll}`.
    fn link(&self) -> String {
        format!("dbs/{}/colls/{}", self.store.database, self.store.container)
    }

    /// The conditional replace of the container's properties with `container` (read with
    /// `etag`): fails when Cosmos DB refuses it, or when the container changed since it was
    /// read (412), so that no one else's change is overwritten.
    fn replace_container(
        &self,
        doing: &str,
        container: &Value,
        etag: Option<String>,
    ) -> Result<()> {
        let answer = self.call(
            doing,
            self.store
                .replace_container_request(container, etag.as_deref(), &date()),
        )?;
        match answer.status().as_u16() {
            200 | 201 => Ok(()),
            412 => bail!(
                "{} changed while init was reading it (its etag no longer matches), so init did \
                 not overwrite that change: run init again",
                self.link()
            ),
            _ => bail!("{doing} of {}: {}", self.link(), refusal(&answer)),
        }
    }

    /// The signed read of the container (the one a ping makes), which must answer 200 with
    /// its properties.
    fn read_container(&self) -> Result<Value> {
        let answer = self.call("read container", self.store.read_container_request(&date()))?;
        if !answer.status().is_success() {
            bail!(
                "the signed read of {} failed: {}",
                self.link(),
                refusal(&answer)
            );
        }
        container_json(&answer)
    }
}

fn container_json(answer: &http::Response<Vec<u8>>) -> Result<Value> {
    serde_json::from_slice(answer.body()).context("the container's properties are not JSON")
}

fn plan(store: &Container, container: &Value) -> Result<PolicyPlan> {
    indexing::plan(container)
        .with_context(|| format!("dbs/{}/colls/{}", store.database, store.container))
}

fn date() -> String {
    x_ms_date(SystemTime::now())
}

/// A refusal in words: the status, Cosmos DB's code and its own message (bounded and
/// sanitised by the core).
fn refusal(answer: &http::Response<Vec<u8>>) -> CosmosFailure {
    CosmosFailure::from_answer(answer.status(), answer.headers(), answer.body())
}

fn report(kind: &str, id: &str, answer: &http::Response<Vec<u8>>) -> Result<()> {
    match answer.status().as_u16() {
        201 => println!("created {kind} {id}"),
        409 => println!("{kind} {id} exists already"),
        _ => bail!("creating {kind} {id}: {}", refusal(answer)),
    }
    Ok(())
}
