//! deploy/spinapp.yaml is a valid SpinKube `SpinApp`: it validates against the
//! `openAPIV3Schema` of the SpinApp CRD published with spin-operator (copied in
//! deploy/crd/), it sets every variable spin.toml declares (secrets only from a Secret), and
//! the example Secret provides every key it references. A broken manifest is shown to fail.
//!
//! Validation is stricter than a bare JSON Schema check in one way, on purpose: an object
//! schema with `properties` and no `additionalProperties` rejects unknown fields, as the API
//! server's strict field validation (`kubectl apply --validate=strict`) does; plain JSON
//! Schema would let a misspelt field through, and Kubernetes would then silently prune it.

use std::path::PathBuf;

use serde_json::{json, Value};

const CRD: &str = "deploy/crd/core.spinkube.dev_spinapps.yaml";
const SPINAPP: &str = "deploy/spinapp.yaml";
const SECRET_EXAMPLE: &str = "deploy/secret.example.yaml";
const SPIN_TOML: &str = "spin.toml";

fn repo_file(relative: &str) -> String {
    // The directory cargo gives at run time: the one compiled in can be another checkout's
    // (see testkit's `manifest_dir`).
    let package = std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    let path: PathBuf = [package.as_str(), "..", "..", relative].iter().collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every YAML document of a file, as JSON values (empty documents skipped).
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let value = <Value as serde::Deserialize>::deserialize(doc);
            value.unwrap_or_else(|e| panic!("not YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The one document of `kind` in a file.
fn document_of_kind(path: &str, kind: &str) -> Value {
    let mut found: Vec<Value> = yaml_documents(&repo_file(path))
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "{path}: expected one {kind}");
    found.remove(0)
}

/// The CRD's v1alpha1 schema, made strict about unknown fields (see the module docs).
fn spinapp_schema() -> Value {
    let crd = document_of_kind(CRD, "CustomResourceDefinition");
    assert_eq!(crd["spec"]["group"], "core.spinkube.dev");
    assert_eq!(crd["spec"]["names"]["kind"], "SpinApp");
    let version = crd["spec"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["name"] == "v1alpha1")
        .expect("a v1alpha1 version");
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    assert!(schema.is_object(), "openAPIV3Schema");
    forbid_unknown_fields(&mut schema);
    schema
}

fn forbid_unknown_fields(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && map.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
    {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, child) in map.iter_mut() {
        match key.as_str() {
            "properties" => {
                if let Value::Object(props) = child {
                    props.values_mut().for_each(forbid_unknown_fields);
                }
            }
            "items" | "additionalProperties" => forbid_unknown_fields(child),
            "anyOf" | "allOf" | "oneOf" => {
                if let Value::Array(options) = child {
                    options.iter_mut().for_each(forbid_unknown_fields);
                }
            }
            _ => {}
        }
    }
}

/// Schema errors plus the checks the API server makes outside the schema, as
/// `path: message` lines; empty when valid.
fn problems(schema: &Value, manifest: &Value) -> Vec<String> {
    // OpenAPI 3.0 schemas are closest to JSON Schema draft 4 (boolean exclusiveMinimum, ...).
    let validator = jsonschema::draft4::new(schema).expect("the CRD schema compiles");
    let mut out: Vec<String> = validator
        .iter_errors(manifest)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if manifest["apiVersion"] != "core.spinkube.dev/v1alpha1" {
        out.push("/apiVersion: not core.spinkube.dev/v1alpha1".into());
    }
    if manifest["kind"] != "SpinApp" {
        out.push("/kind: not SpinApp".into());
    }
    match manifest["metadata"]["name"].as_str() {
        Some(name) if is_dns_label(name) => {}
        _ => out.push("/metadata/name: missing or not a DNS-1123 label".into()),
    }
    // `format: int32` is an annotation to JSON Schema; the API server enforces it.
    if let Some(replicas) = manifest["spec"]["replicas"].as_i64() {
        if i32::try_from(replicas).is_err() {
            out.push("/spec/replicas: not an int32".into());
        }
    }
    out
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn spinapp() -> Value {
    document_of_kind(SPINAPP, "SpinApp")
}

fn variables(app: &Value) -> Vec<Value> {
    app["spec"]["variables"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_spinapp_validates_against_the_crd_schema() {
    let problems = problems(&spinapp_schema(), &spinapp());
    assert!(
        problems.is_empty(),
        "{SPINAPP} is not a valid SpinApp:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_spinapp_is_the_one_documented() {
    let app = spinapp();
    let spec = &app["spec"];
    assert_eq!(spec["image"], "myregistry.azurecr.io/acr-webhook:0.1.0");
    assert_eq!(spec["executor"], "containerd-shim-spin");
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["checks"]["liveness"]["httpGet"]["path"], "/healthz");
    assert_eq!(spec["checks"]["readiness"]["httpGet"]["path"], "/healthz");
    let mut names: Vec<&str> = Vec::new();
    for v in variables(&app).iter() {
        let name = v["name"].as_str().expect("every variable has a name");
        assert!(!names.contains(&name), "variable `{name}` is set twice");
        names.push(name);
        assert!(
            v.get("value").is_some() != v.get("valueFrom").is_some(),
            "variable `{name}` needs exactly one of value / valueFrom"
        );
    }
}

#[test]
fn every_spin_toml_variable_is_set_and_secrets_come_from_a_secret() {
    let manifest: toml::Table = toml::from_str(&repo_file(SPIN_TOML)).expect("spin.toml parses");
    let declared = manifest
        .get("variables")
        .and_then(|v| v.as_table())
        .expect("spin.toml has [variables]");
    assert!(!declared.is_empty());
    let app = spinapp();
    let set = variables(&app);
    for (name, declaration) in declared {
        let binding = set
            .iter()
            .find(|v| v["name"] == name.as_str())
            .unwrap_or_else(|| panic!("spin.toml variable `{name}` is not set in {SPINAPP}"));
        let secret = declaration
            .get("secret")
            .and_then(|s| s.as_bool())
            .unwrap_or(false);
        if secret {
            assert!(
                binding.get("value").is_none()
                    && binding["valueFrom"]["secretKeyRef"]["key"].is_string(),
                "secret variable `{name}` must come from a Secret (valueFrom.secretKeyRef), not a literal"
            );
        }
    }
}

/// spin.toml's `[variables]` table.
fn declared_variables() -> toml::Table {
    let manifest: toml::Table = toml::from_str(&repo_file(SPIN_TOML)).expect("spin.toml parses");
    manifest
        .get("variables")
        .and_then(|v| v.as_table())
        .cloned()
        .expect("spin.toml has [variables]")
}

/// The example sets each variable spin.toml has a default for to that default (the example
/// shows the defaults; it is edited where the app differs), so the two cannot drift apart.
#[test]
fn literal_values_are_spin_tomls_defaults() {
    let declared = declared_variables();
    let mut checked = Vec::new();
    for v in variables(&spinapp()) {
        let name = v["name"].as_str().unwrap();
        let (Some(value), Some(default)) = (
            v["value"].as_str(),
            declared
                .get(name)
                .and_then(|d| d.get("default"))
                .and_then(|d| d.as_str()),
        ) else {
            continue;
        };
        assert_eq!(value, default, "variable `{name}`");
        checked.push(name.to_owned());
    }
    for name in [
        "cosmos_auth",
        "entra_imds_endpoint",
        "entra_federated_token_file",
    ] {
        assert!(
            checked.iter().any(|c| c == name),
            "{name} is not set to its default"
        );
    }
}

/// Secrets that one way of authenticating needs and another does not are optional in the
/// Secret: the account key (not with Entra ID), the client secret (only with
/// `client-secret`), the continuation key; the webhook keys are always needed.
#[test]
fn secrets_needed_in_one_mode_only_are_optional() {
    let app = spinapp();
    let optional = |name: &str| {
        let v = variables(&app)
            .into_iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("{name} is set"));
        v["valueFrom"]["secretKeyRef"]["optional"].as_bool() == Some(true)
    };
    for name in [
        "cosmos_key",
        "entra_client_secret",
        "continuation_key",
        "read_keys",
    ] {
        assert!(optional(name), "{name} must be optional");
    }
    assert!(!optional("webhook_keys"));
    let declared = declared_variables();
    for name in ["cosmos_key", "entra_client_secret", "continuation_key"] {
        assert_eq!(declared[name]["secret"].as_bool(), Some(true), "{name}");
        assert_eq!(declared[name]["default"].as_str(), Some(""), "{name}");
    }
}

#[test]
fn the_example_secret_has_every_referenced_key_and_only_placeholders() {
    let secret = document_of_kind(SECRET_EXAMPLE, "Secret");
    assert_eq!(secret["apiVersion"], "v1");
    let data = secret["stringData"]
        .as_object()
        .expect("the example uses stringData");
    for (key, value) in data {
        let value = value.as_str().unwrap_or_default();
        assert!(
            value.contains("PLACEHOLDER"),
            "`{key}` in {SECRET_EXAMPLE} must be a marked placeholder"
        );
    }
    let app = spinapp();
    let mut referenced = 0;
    for v in variables(&app) {
        let reference = &v["valueFrom"]["secretKeyRef"];
        if reference.is_null() {
            continue;
        }
        referenced += 1;
        assert_eq!(
            reference["name"], secret["metadata"]["name"],
            "variable {} refers to another Secret",
            v["name"]
        );
        let key = reference["key"].as_str().expect("secretKeyRef.key");
        let optional = reference["optional"].as_bool().unwrap_or(false);
        assert!(
            optional || data.contains_key(key),
            "the Secret lacks `{key}`, which variable {} requires",
            v["name"]
        );
    }
    assert!(
        referenced >= 2,
        "cosmos_key and webhook_keys come from the Secret"
    );
}

/// A change that breaks a manifest in one way.
type Breakage = Box<dyn Fn(&mut Value)>;

/// The schema check is not vacuous: each of these breaks the manifest in one way.
#[test]
fn broken_manifests_are_rejected() {
    let schema = spinapp_schema();
    let good = spinapp();
    assert!(problems(&schema, &good).is_empty());

    let broken: Vec<(&str, Breakage)> = vec![
        (
            "replicas as a string",
            Box::new(|m| m["spec"]["replicas"] = json!("two")),
        ),
        (
            "replicas beyond int32",
            Box::new(|m| m["spec"]["replicas"] = json!(1_i64 << 40)),
        ),
        (
            "image missing (required)",
            Box::new(|m| {
                m["spec"].as_object_mut().unwrap().remove("image");
            }),
        ),
        (
            "executor missing (required)",
            Box::new(|m| {
                m["spec"].as_object_mut().unwrap().remove("executor");
            }),
        ),
        (
            "a variable value that is a number",
            Box::new(|m| m["spec"]["variables"][0]["value"] = json!(443)),
        ),
        (
            "a variable without a name",
            Box::new(|m| {
                m["spec"]["variables"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("name");
            }),
        ),
        (
            "a secretKeyRef without a key",
            Box::new(|m| {
                let vars = m["spec"]["variables"].as_array_mut().unwrap();
                let v = vars
                    .iter_mut()
                    .find(|v| v["valueFrom"]["secretKeyRef"].is_object())
                    .unwrap();
                v["valueFrom"]["secretKeyRef"]
                    .as_object_mut()
                    .unwrap()
                    .remove("key");
            }),
        ),
        (
            "a misspelt field (strict field validation)",
            Box::new(|m| m["spec"]["replica"] = json!(2)),
        ),
        (
            "variables as a map instead of a list",
            Box::new(|m| m["spec"]["variables"] = json!({"cosmos_endpoint": "x"})),
        ),
        (
            "a health check without a path",
            Box::new(|m| m["spec"]["checks"]["liveness"]["httpGet"] = json!({})),
        ),
        (
            "another kind",
            Box::new(|m| m["kind"] = json!("Deployment")),
        ),
        (
            "a name that is not a DNS label",
            Box::new(|m| m["metadata"]["name"] = json!("ACR_webhook")),
        ),
    ];
    for (what, breaks) in broken {
        let mut manifest = good.clone();
        breaks(&mut manifest);
        assert!(
            !problems(&schema, &manifest).is_empty(),
            "a manifest with {what} was accepted"
        );
    }

    // And straight from YAML text: `replicas: two` is a string to YAML.
    let text = repo_file(SPINAPP).replace("replicas: 2", "replicas: two");
    let manifest = yaml_documents(&text)
        .into_iter()
        .find(|d| d["kind"] == "SpinApp")
        .unwrap();
    let found = problems(&schema, &manifest);
    assert!(
        found.iter().any(|p| p.starts_with("/spec/replicas")),
        "{found:?}"
    );
}
