//! Reading `spin.toml` (manifest version 2) and resolving its variables the way `spin up` does.
//!
//! Supported: `[application]`, `[variables]` (`default`, `required`, `secret`, `description`),
//! exactly one `[[trigger.http]]` (`route`, `component` by id), and for that component
//! `source` (a local path, relative to the manifest's folder), `allowed_outbound_hosts` and
//! `[component.X.variables]`, both with `{{ name }}` templates, and `key_value_stores` (the
//! store labels the component may open, see [`crate::key_value`]). Other keys (`build`,
//! `files`, ...) are accepted and ignored.
//!
//! Variable values come, highest precedence first, from `--variable name=value`, from the
//! environment variable `SPIN_VARIABLE_<NAME>` (name upper-cased) and from the `default` in
//! `[variables]`. A `required` variable with no value stops start-up with an error naming it.
//! Secret values are never part of an error message or a `Debug` output.

use crate::outbound::{AllowedHost, AllowedHosts};
use crate::route::Route;
use crate::template::Template;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use spin_manifest_rules::{env_var_name, validate_variable_name};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The manifest file `--from` defaults to, and the one looked for when `--from` is a folder.
pub const DEFAULT_MANIFEST_FILE: &str = "spin.toml";

/// The only `spin_manifest_version` this host reads.
pub const SUPPORTED_MANIFEST_VERSION: i64 = 2;

/// Parses a `--variable` argument `name=value` (the value may contain `=` and be empty).
pub fn parse_variable_arg(arg: &str) -> Result<(String, String), String> {
    let Some((name, value)) = arg.split_once('=') else {
        return Err("expected NAME=VALUE".to_string());
    };
    let name = name.trim();
    validate_variable_name(name)?;
    Ok((name.to_string(), value.to_string()))
}

// ---------------------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: Option<toml::Value>,
    application: Option<RawApplication>,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct RawComponent {
    source: Option<toml::Value>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// The checked manifest.

/// One `[variables]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDecl {
    /// The `default`, if any (never `Some` when `required`).
    pub default: Option<String>,
    /// Whether start-up fails when no value is given.
    pub required: bool,
    /// Whether the value must never be printed.
    pub secret: bool,
}

/// The component the HTTP trigger routes to.
#[derive(Debug, Clone)]
pub struct ComponentDecl {
    /// The component id (`[component.<id>]`).
    pub id: String,
    /// The Wasm file: `source` joined to the manifest's folder.
    pub source: PathBuf,
    /// `allowed_outbound_hosts` entries, not yet rendered.
    pub allowed_outbound_hosts: Vec<Template>,
    /// `[component.<id>.variables]`, not yet rendered.
    pub variables: BTreeMap<String, Template>,
    /// `key_value_stores`: the labels of the key-value stores the component may open.
    pub key_value_stores: Vec<String>,
}

/// A parsed and checked `spin.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `[application] name`.
    pub name: String,
    /// `[application] version`, if any.
    pub version: Option<String>,
    /// `[variables]`.
    pub variables: BTreeMap<String, VariableDecl>,
    /// The one `[[trigger.http]]` route.
    pub route: Route,
    /// The component that route serves.
    pub component: ComponentDecl,
}

impl Manifest {
    /// Reads a manifest file, or `spin.toml` inside a folder.
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            path.join(DEFAULT_MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read manifest {}", file.display()))?;
        let base_dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::parse(&text, &base_dir)
            .with_context(|| format!("invalid manifest {}", file.display()))
    }

    /// Parses manifest text; relative component sources are resolved against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| anyhow!("{e}"))?;

        match raw
            .spin_manifest_version
            .as_ref()
            .and_then(|v| v.as_integer())
        {
            Some(SUPPORTED_MANIFEST_VERSION) => {}
            _ => bail!("only `spin_manifest_version = {SUPPORTED_MANIFEST_VERSION}` is supported"),
        }
        let application = raw.application.context("missing [application] table")?;

        let mut variables = BTreeMap::new();
        for (name, var) in raw.variables {
            validate_variable_name(&name).map_err(|e| anyhow!("[variables]: {e}"))?;
            if var.required && var.default.is_some() {
                bail!("variable {name:?} cannot be both `required` and have a `default`");
            }
            if !var.required && var.default.is_none() {
                bail!("variable {name:?} must have a `default` or be `required = true`");
            }
            variables.insert(
                name,
                VariableDecl {
                    default: var.default,
                    required: var.required,
                    secret: var.secret,
                },
            );
        }

        let (route, component_id) = parse_http_trigger(raw.trigger)?;

        let mut components = raw.component;
        let raw_component = components.remove(&component_id).with_context(|| {
            format!("the HTTP trigger refers to component {component_id:?}, which has no [component.{component_id}] table")
        })?;
        let component = parse_component(component_id, raw_component, base_dir, &variables)?;

        Ok(Self {
            name: application.name,
            version: application.version,
            variables,
            route,
            component,
        })
    }

    /// Resolves the application's variables and renders the component's templates.
    pub fn resolve(&self, vars: &ResolvedVariables) -> Result<App> {
        let lookup = |name: &str| vars.values.get(name).map(|v| v.value.as_str());
        let secret = |t: &Template| t.variables().any(|n| vars.is_secret(n));

        let mut component_variables = BTreeMap::new();
        for (name, template) in &self.component.variables {
            let value = template.render(lookup)?;
            component_variables.insert(
                name.clone(),
                VariableValue {
                    value,
                    secret: secret(template),
                },
            );
        }

        let mut allowed = Vec::new();
        for template in &self.component.allowed_outbound_hosts {
            let value = template.render(lookup)?;
            let host = AllowedHost::parse(&value).map_err(|e| {
                // The parse error quotes the entry; keep secret values out of it.
                if secret(template) {
                    anyhow!(
                        "[component.{}] allowed_outbound_hosts entry {:?} (secret value hidden) is invalid",
                        self.component.id,
                        template.raw()
                    )
                } else {
                    anyhow!(
                        "[component.{}] allowed_outbound_hosts entry {:?}: {e:#}",
                        self.component.id,
                        template.raw()
                    )
                }
            })?;
            allowed.push(host);
        }

        Ok(App {
            name: self.name.clone(),
            route: self.route.clone(),
            component_id: self.component.id.clone(),
            source: self.component.source.clone(),
            allowed_outbound_hosts: AllowedHosts::from_entries(allowed),
            key_value_stores: self.component.key_value_stores.clone(),
            variables: ComponentVariables {
                component_id: self.component.id.clone(),
                values: component_variables,
            },
        })
    }
}

fn parse_http_trigger(mut triggers: BTreeMap<String, Vec<toml::Table>>) -> Result<(Route, String)> {
    let http = triggers.remove("http").unwrap_or_default();
    if let Some(other) = triggers.keys().next() {
        bail!("trigger type {other:?} is not supported; only [[trigger.http]] is");
    }
    let mut http = http.into_iter();
    let (Some(trigger), None) = (http.next(), http.next()) else {
        bail!("exactly one [[trigger.http]] is supported");
    };
    let route = match trigger.get("route") {
        Some(toml::Value::String(route)) => Route::parse(route)?,
        Some(_) => {
            bail!("[[trigger.http]] route must be a string (private routes are not supported)")
        }
        None => bail!("[[trigger.http]] has no route"),
    };
    let component = match trigger.get("component") {
        Some(toml::Value::String(id)) => id.clone(),
        Some(_) => bail!("[[trigger.http]] component must be a component id (inline components are not supported)"),
        None => bail!("[[trigger.http]] has no component"),
    };
    Ok((route, component))
}

fn parse_component(
    id: String,
    raw: RawComponent,
    base_dir: &Path,
    variables: &BTreeMap<String, VariableDecl>,
) -> Result<ComponentDecl> {
    let source = match raw.source {
        Some(toml::Value::String(path)) => base_dir.join(path),
        Some(_) => bail!(
            "[component.{id}] source must be a local file path (remote sources are not supported)"
        ),
        None => bail!("[component.{id}] has no source"),
    };
    let check_refs = |template: &Template, what: &str| -> Result<()> {
        for name in template.variables() {
            if !variables.contains_key(name) {
                bail!(
                    "[component.{id}] {what} {:?} refers to variable {name:?}, which is not declared in [variables]",
                    template.raw()
                );
            }
        }
        Ok(())
    };

    let mut allowed_outbound_hosts = Vec::new();
    for entry in &raw.allowed_outbound_hosts {
        let template = Template::parse(entry)
            .with_context(|| format!("[component.{id}] allowed_outbound_hosts"))?;
        check_refs(&template, "allowed_outbound_hosts entry")?;
        if template.is_literal() {
            // Catch typos now rather than at the first request.
            AllowedHost::parse(entry)
                .with_context(|| format!("[component.{id}] allowed_outbound_hosts"))?;
        }
        allowed_outbound_hosts.push(template);
    }

    let mut component_variables = BTreeMap::new();
    for (name, value) in &raw.variables {
        validate_variable_name(name).map_err(|e| anyhow!("[component.{id}.variables]: {e}"))?;
        let template =
            Template::parse(value).with_context(|| format!("[component.{id}.variables] {name}"))?;
        check_refs(&template, &format!("variable {name:?} template"))?;
        component_variables.insert(name.clone(), template);
    }

    for label in &raw.key_value_stores {
        crate::key_value::validate_label(label)
            .map_err(|e| anyhow!("[component.{id}] key_value_stores: {e}"))?;
    }

    Ok(ComponentDecl {
        id,
        source,
        allowed_outbound_hosts,
        variables: component_variables,
        key_value_stores: raw.key_value_stores,
    })
}

// ---------------------------------------------------------------------------------------
// Values.

/// Where an application variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableSource {
    /// `--variable name=value`.
    Cli,
    /// `SPIN_VARIABLE_<NAME>`.
    Env,
    /// The manifest's `default`.
    Default,
}

/// A resolved value; `Debug` hides it when secret.
#[derive(Clone, PartialEq, Eq)]
pub struct VariableValue {
    /// The value itself.
    pub value: String,
    /// Whether it must never be printed.
    pub secret: bool,
}

impl fmt::Debug for VariableValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<secret>")
        } else {
            fmt::Debug::fmt(&self.value, f)
        }
    }
}

/// The application variables with their values.
#[derive(Debug, Clone, Default)]
pub struct ResolvedVariables {
    values: BTreeMap<String, VariableValue>,
    sources: BTreeMap<String, VariableSource>,
}

impl ResolvedVariables {
    /// The value of `name`, if the application declares it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.value.as_str())
    }

    /// Where the value of `name` came from.
    pub fn source(&self, name: &str) -> Option<VariableSource> {
        self.sources.get(name).copied()
    }

    /// Whether `name` is declared `secret = true`.
    pub fn is_secret(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|v| v.secret)
    }
}

/// Result of [`resolve_variables`]: the values plus non-fatal notes for the operator.
#[derive(Debug)]
pub struct Resolution {
    /// The values.
    pub variables: ResolvedVariables,
    /// Warnings, e.g. a `--variable` that names no declared variable (values never included).
    pub warnings: Vec<String>,
}

/// Resolves every `[variables]` entry: `cli` (later entries win) over `env` over the default.
///
/// `env` is asked for `SPIN_VARIABLE_<NAME>`; pass `|k| std::env::var(k).ok()` in the binary.
/// Fails naming every required variable that has no value.
pub fn resolve_variables(
    decls: &BTreeMap<String, VariableDecl>,
    cli: &[(String, String)],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Resolution> {
    let mut warnings = Vec::new();
    for (name, _) in cli {
        if !decls.contains_key(name) {
            warnings.push(format!(
                "--variable {name}: the manifest declares no such variable; ignored"
            ));
        }
    }

    let mut values = BTreeMap::new();
    let mut sources = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, decl) in decls {
        let from_cli = cli
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone());
        let found = match from_cli {
            Some(v) => Some((v, VariableSource::Cli)),
            None => match env(&env_var_name(name)) {
                Some(v) => Some((v, VariableSource::Env)),
                None => decl.default.clone().map(|v| (v, VariableSource::Default)),
            },
        };
        match found {
            Some((value, source)) => {
                values.insert(
                    name.clone(),
                    VariableValue {
                        value,
                        secret: decl.secret,
                    },
                );
                sources.insert(name.clone(), source);
            }
            None => missing.push(name.as_str()),
        }
    }
    if !missing.is_empty() {
        let how = missing
            .iter()
            .map(|n| format!("--variable {n}=... or {}", env_var_name(n)))
            .collect::<Vec<_>>()
            .join("; ");
        bail!(
            "missing required variable{} {} (set {how})",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        );
    }
    Ok(Resolution {
        variables: ResolvedVariables { values, sources },
        warnings,
    })
}

/// A component's `[component.X.variables]`, rendered: what `fermyon:spin/variables.get` sees.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    /// The component id, for error messages.
    pub component_id: String,
    values: BTreeMap<String, VariableValue>,
}

/// Why [`ComponentVariables::get`] has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The name breaks Spin's naming rules; the message says how.
    InvalidName(String),
    /// The component has no such variable.
    Undefined(String),
}

impl ComponentVariables {
    /// Builds a set directly (tests, tools).
    pub fn new(component_id: &str, values: BTreeMap<String, String>) -> Self {
        Self {
            component_id: component_id.to_string(),
            values: values
                .into_iter()
                .map(|(k, value)| {
                    (
                        k,
                        VariableValue {
                            value,
                            secret: false,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Looks a variable up with Spin's checks.
    pub fn get(&self, name: &str) -> Result<&str, LookupError> {
        validate_variable_name(name).map_err(LookupError::InvalidName)?;
        self.values
            .get(name)
            .map(|v| v.value.as_str())
            .ok_or_else(|| {
                LookupError::Undefined(format!(
                    "no variable {name:?} for component {:?}",
                    self.component_id
                ))
            })
    }

    /// The variable names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

/// Everything `up` needs to serve the application, with all templates rendered.
#[derive(Debug, Clone)]
pub struct App {
    /// `[application] name`.
    pub name: String,
    /// The HTTP route.
    pub route: Route,
    /// The component id.
    pub component_id: String,
    /// The Wasm file (core module or component).
    pub source: PathBuf,
    /// The component's outbound allow-list.
    pub allowed_outbound_hosts: AllowedHosts,
    /// The labels of the key-value stores the component may open (`key_value_stores`).
    pub key_value_stores: Vec<String>,
    /// The component's variables.
    pub variables: ComponentVariables,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const PROJECT_MANIFEST: &str = include_str!("../../../spin.toml");

    const SMALL: &str = r#"
spin_manifest_version = 2
[application]
name = "probe"
version = "0.1.0"
[variables]
upstream_url = { default = "http://127.0.0.1:8099/hello.txt" }
upstream_host = { default = "http://127.0.0.1:8099" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "target/wasm32-wasip1/release/probe.wasm"
allowed_outbound_hosts = ["{{ upstream_host }}", "https://example.com"]
[component.probe.variables]
upstream_url = "{{ upstream_url }}"
auth = "Bearer {{ token }}"
fixed = "literal"
[component.probe.build]
command = "cargo build"
"#;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, Path::new("/app"))
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn cli(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `m` resolved with `--variable` values `pairs` and no environment.
    fn resolved(m: &Manifest, pairs: &[(&str, &str)]) -> App {
        let res = resolve_variables(&m.variables, &cli(pairs), env_of(&[])).unwrap();
        m.resolve(&res.variables).unwrap()
    }

    #[test]
    fn parses_small_manifest() {
        let m = parse(SMALL).unwrap();
        assert_eq!(m.name, "probe");
        assert_eq!(m.version.as_deref(), Some("0.1.0"));
        assert_eq!(m.route, Route::parse("/...").unwrap());
        assert_eq!(m.component.id, "probe");
        assert_eq!(
            m.component.source,
            PathBuf::from("/app/target/wasm32-wasip1/release/probe.wasm")
        );
        assert!(m.variables["token"].required && m.variables["token"].secret);
        assert_eq!(
            m.variables["upstream_url"].default.as_deref(),
            Some("http://127.0.0.1:8099/hello.txt")
        );
    }

    #[test]
    fn parses_the_project_manifest() {
        let m = parse(PROJECT_MANIFEST).unwrap();
        assert_eq!(m.component.id, "acr-webhook");
        assert!(m.variables["cosmos_key"].secret);
        let app = resolved(
            &m,
            &[
                ("cosmos_endpoint", "https://acct.documents.azure.com:443/"),
                ("cosmos_key", "k"),
                ("webhook_keys", "w"),
            ],
        );
        assert_eq!(app.variables.get("cosmos_database"), Ok("acr"));
        assert_eq!(app.variables.get("partition_key_path"), Ok("/id"));
        let d = crate::outbound::Destination::from_uri(
            &"https://acct.documents.azure.com/dbs/acr".parse().unwrap(),
        )
        .unwrap();
        assert!(app.allowed_outbound_hosts.allows(&d));
        assert_eq!(app.key_value_stores, ["default"]);
    }

    /// The token endpoints are allowed from their variables' defaults: Entra's authority over
    /// https, the instance metadata service over plain http on its one address and port 80
    /// (plain http to it is what Azure serves; the core accepts plain http to no other host
    /// off this machine), and nothing more.
    #[test]
    fn the_project_manifest_allows_the_token_endpoints() {
        let m = parse(PROJECT_MANIFEST).unwrap();
        assert!(
            !m.variables["cosmos_key"].required,
            "not needed with Entra ID"
        );
        assert!(m.variables["cosmos_key"].secret);
        for secret in ["entra_client_secret", "continuation_key"] {
            assert!(m.variables[secret].secret, "{secret}");
        }
        let app = resolved(
            &m,
            &[
                ("cosmos_endpoint", "https://acct.documents.azure.com:443/"),
                ("cosmos_auth", "entra"),
                ("webhook_keys", "w"),
            ],
        );
        let allows = |url: &str| app.allowed_outbound_hosts.allows_uri(&url.parse().unwrap());
        assert!(allows(
            "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"
        ));
        assert!(allows(
            "http://169.254.169.254/metadata/identity/oauth2/token"
        ));
        assert!(allows("https://acct.documents.azure.com/dbs"));
        assert!(!allows(
            "http://login.microsoftonline.com/tenant/oauth2/v2.0/token"
        ));
        assert!(!allows("http://169.254.169.254:8080/metadata"));
        assert!(!allows("https://169.254.169.254/metadata"));
        assert!(!allows("http://169.254.169.253/metadata"));
        assert_eq!(
            app.variables.get("entra_token_source"),
            Ok("managed-identity")
        );
        assert_eq!(
            app.variables.get("entra_federated_token_file"),
            Ok("/var/run/secrets/azure/tokens/azure-identity-token")
        );

        // A sovereign cloud's authority replaces the public one in the allow-list.
        let app = resolved(
            &m,
            &[
                ("cosmos_endpoint", "https://acct.documents.azure.us"),
                ("entra_authority_host", "https://login.microsoftonline.us"),
                ("webhook_keys", "w"),
            ],
        );
        let allows = |url: &str| app.allowed_outbound_hosts.allows_uri(&url.parse().unwrap());
        assert!(allows(
            "https://login.microsoftonline.us/t/oauth2/v2.0/token"
        ));
        assert!(!allows(
            "https://login.microsoftonline.com/t/oauth2/v2.0/token"
        ));
    }

    #[test]
    fn key_value_store_labels_follow_spins_rules() {
        let with = |labels: &str| {
            SMALL.replace(
                "[component.probe.variables]",
                &format!("key_value_stores = {labels}\n[component.probe.variables]"),
            )
        };
        let m = parse(&with(r#"["default", "token-cache", "cache_2"]"#)).unwrap();
        assert_eq!(
            m.component.key_value_stores,
            ["default", "token-cache", "cache_2"]
        );
        assert!(parse(SMALL).unwrap().component.key_value_stores.is_empty());
        for bad in [
            r#"["Default"]"#,
            r#"[""]"#,
            r#"["a--b"]"#,
            r#"["2nd"]"#,
            r#"["a/b"]"#,
        ] {
            let err = format!("{:#}", parse(&with(bad)).unwrap_err());
            assert!(err.contains("key_value_stores"), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_apply_and_templates_render() {
        let m = parse(SMALL).unwrap();
        let res = resolve_variables(&m.variables, &cli(&[("token", "t0p")]), env_of(&[])).unwrap();
        assert!(res.warnings.is_empty());
        assert_eq!(
            res.variables.source("upstream_url"),
            Some(VariableSource::Default)
        );
        let app = m.resolve(&res.variables).unwrap();
        assert_eq!(
            app.variables.get("upstream_url"),
            Ok("http://127.0.0.1:8099/hello.txt")
        );
        assert_eq!(app.variables.get("auth"), Ok("Bearer t0p"));
        assert_eq!(app.variables.get("fixed"), Ok("literal"));
        assert!(app
            .allowed_outbound_hosts
            .allows_uri(&"http://127.0.0.1:8099/hello.txt".parse().unwrap()));
        assert!(!app
            .allowed_outbound_hosts
            .allows_uri(&"http://127.0.0.1:8098/".parse().unwrap()));
    }

    #[test]
    fn precedence_cli_over_env_over_default() {
        let m = parse(SMALL).unwrap();
        let env = env_of(&[
            ("SPIN_VARIABLE_UPSTREAM_URL", "from-env"),
            ("SPIN_VARIABLE_TOKEN", "env-token"),
        ]);
        let res = resolve_variables(&m.variables, &cli(&[]), &env).unwrap();
        assert_eq!(res.variables.get("upstream_url"), Some("from-env"));
        assert_eq!(
            res.variables.source("upstream_url"),
            Some(VariableSource::Env)
        );
        assert_eq!(res.variables.get("token"), Some("env-token"));

        let res = resolve_variables(
            &m.variables,
            &cli(&[("upstream_url", "first"), ("upstream_url", "from-cli")]),
            &env,
        )
        .unwrap();
        assert_eq!(res.variables.get("upstream_url"), Some("from-cli"));
        assert_eq!(
            res.variables.source("upstream_url"),
            Some(VariableSource::Cli)
        );
        assert_eq!(res.variables.get("token"), Some("env-token"));
    }

    #[test]
    fn env_names_are_upper_case_only() {
        let m = parse(SMALL).unwrap();
        let env = env_of(&[("SPIN_VARIABLE_token", "lower")]);
        assert!(resolve_variables(&m.variables, &[], env).is_err());
        assert_eq!(env_var_name("cosmos_key"), "SPIN_VARIABLE_COSMOS_KEY");
    }

    #[test]
    fn missing_required_variables_are_named() {
        let m = parse(PROJECT_MANIFEST).unwrap();
        let err = resolve_variables(&m.variables, &cli(&[("cosmos_key", "k")]), env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cosmos_endpoint"), "{err}");
        assert!(err.contains("webhook_keys"), "{err}");
        assert!(err.contains("SPIN_VARIABLE_COSMOS_ENDPOINT"), "{err}");
        assert!(!err.contains("cosmos_key,"), "{err}");
    }

    #[test]
    fn empty_value_counts_as_set() {
        let m = parse(SMALL).unwrap();
        let res = resolve_variables(&m.variables, &cli(&[("token", "")]), env_of(&[])).unwrap();
        assert_eq!(res.variables.get("token"), Some(""));
    }

    #[test]
    fn unknown_cli_variable_is_a_warning_without_value() {
        let m = parse(SMALL).unwrap();
        let res = resolve_variables(
            &m.variables,
            &cli(&[("token", "t"), ("nope", "hidden-value")]),
            env_of(&[]),
        )
        .unwrap();
        assert_eq!(res.warnings.len(), 1);
        assert!(res.warnings[0].contains("nope"));
        assert!(!res.warnings[0].contains("hidden-value"));
    }

    #[test]
    fn secrets_are_hidden_in_debug() {
        let m = parse(SMALL).unwrap();
        let res =
            resolve_variables(&m.variables, &cli(&[("token", "s3cr3t")]), env_of(&[])).unwrap();
        let app = m.resolve(&res.variables).unwrap();
        let dbg = format!("{res:?} {app:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("127.0.0.1:8099/hello.txt"));
    }

    #[test]
    fn secret_allowed_host_is_not_echoed_on_error() {
        let text = SMALL.replace("\"{{ upstream_host }}\"", "\"{{ token }}\"");
        let m = parse(&text).unwrap();
        let res = resolve_variables(
            &m.variables,
            &cli(&[("token", "not a url s3cr3t")]),
            env_of(&[]),
        )
        .unwrap();
        let err = format!("{:#}", m.resolve(&res.variables).unwrap_err());
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(err.contains("{{ token }}"), "{err}");
    }

    #[test]
    fn bad_rendered_allowed_host_is_an_error() {
        let m = parse(SMALL).unwrap();
        let res = resolve_variables(
            &m.variables,
            &cli(&[("token", "t"), ("upstream_host", "127.0.0.1:8099")]),
            env_of(&[]),
        )
        .unwrap();
        let err = format!("{:#}", m.resolve(&res.variables).unwrap_err());
        assert!(err.contains("no scheme"), "{err}");
    }

    #[test]
    fn component_variable_lookup_rules() {
        let vars =
            ComponentVariables::new("c", BTreeMap::from([("a_b".to_string(), "v".to_string())]));
        assert_eq!(vars.get("a_b"), Ok("v"));
        assert!(matches!(vars.get("A_B"), Err(LookupError::InvalidName(_))));
        assert!(matches!(vars.get(""), Err(LookupError::InvalidName(_))));
        assert!(matches!(
            vars.get("missing"),
            Err(LookupError::Undefined(_))
        ));
    }

    #[test]
    fn variable_arg_parsing() {
        assert_eq!(parse_variable_arg("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_variable_arg("a="), Ok(("a".into(), "".into())));
        assert!(parse_variable_arg("a").is_err());
        assert!(parse_variable_arg("A=1").is_err());
        assert!(parse_variable_arg("=1").is_err());
    }

    #[test]
    fn manifest_errors() {
        let cases: &[(&str, &str)] = &[
            ("not toml [", "expected"),
            (
                "spin_manifest_version = 1\n[application]\nname='x'",
                "spin_manifest_version",
            ),
            (
                &SMALL.replace(
                    "token = { required = true, secret = true }",
                    "token = { required = true, default = \"x\" }",
                ),
                "both",
            ),
            (
                &SMALL.replace(
                    "token = { required = true, secret = true }",
                    "token = { secret = true }",
                ),
                "must have a `default`",
            ),
            (
                &SMALL.replace(
                    "token = { required = true, secret = true }",
                    "token = { required = true, bogus = 1 }",
                ),
                "bogus",
            ),
            (
                &SMALL.replace("component = \"probe\"", "component = \"other\""),
                "other",
            ),
            (
                &SMALL.replace("route = \"/...\"", "route = \"nope\""),
                "must start with '/'",
            ),
            (
                &SMALL.replace("\"{{ upstream_url }}\"", "\"{{ undeclared }}\""),
                "undeclared",
            ),
            (
                &SMALL.replace("\"https://example.com\"", "\"https://example.com/path\""),
                "path",
            ),
            (
                &SMALL.replace(
                    "source = \"target/wasm32-wasip1/release/probe.wasm\"",
                    "source = { url = \"https://x\", digest = \"sha256:0\" }",
                ),
                "local file",
            ),
            (
                &SMALL.replace("[variables]", "[variables]\nBad = { default = \"x\" }"),
                "Bad",
            ),
            (
                &format!("{SMALL}\n[[trigger.http]]\nroute = \"/x\"\ncomponent = \"probe\"\n"),
                "exactly one",
            ),
            (
                &SMALL.replace(
                    "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n",
                    "",
                ),
                "exactly one",
            ),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }

    #[test]
    fn load_resolves_source_relative_to_manifest_folder() {
        let dir = std::env::temp_dir().join(format!("acr-webhook-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("spin.toml"), SMALL).unwrap();
        let by_file = Manifest::load(&dir.join("spin.toml")).unwrap();
        let by_dir = Manifest::load(&dir).unwrap();
        assert_eq!(
            by_file.component.source,
            dir.join("target/wasm32-wasip1/release/probe.wasm")
        );
        assert_eq!(by_dir.component.source, by_file.component.source);
        let missing = Manifest::load(&dir.join("nope.toml")).unwrap_err();
        assert!(format!("{missing:#}").contains("nope.toml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
