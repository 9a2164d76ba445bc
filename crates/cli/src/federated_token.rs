//! Workload identity's federated token for the component under `acr-webhook up`: with
//! `cosmos_auth = "entra"` and `entra_token_source = "workload-identity"`, the folder of
//! `entra_federated_token_file` is preopened read-only for every request at the same path in
//! the guest, so the component reads the file where the variable says (and reads it again on
//! every token fetch: Kubernetes rotates it). Nothing is preopened otherwise: the component
//! sees no filesystem.
//!
//! The same on the other hosts: `wasmtime serve -S cli --dir DIR::DIR`; Spin, a `files` entry
//! (README "Cosmos DB with Entra ID").

use crate::manifest::App;
use acr_webhook_core::config::{
    VAR_COSMOS_AUTH as COSMOS_AUTH, VAR_ENTRA_FEDERATED_TOKEN_FILE as TOKEN_FILE,
    VAR_ENTRA_TOKEN_SOURCE as TOKEN_SOURCE,
};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// A folder preopened read-only at the same path in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDir {
    host: PathBuf,
    guest: String,
}

impl TokenDir {
    /// The folder to preopen for `app`, if its variables ask for workload identity. Fails when
    /// the file's path is not absolute or its folder does not exist (on AKS the workload
    /// identity webhook mounts it; a pod without the webhook's label has none).
    pub fn for_app(app: &App) -> Result<Option<Self>> {
        let value = |name: &str| app.variables.get(name).ok().map(str::trim);
        if value(COSMOS_AUTH) != Some("entra") || value(TOKEN_SOURCE) != Some("workload-identity") {
            return Ok(None);
        }
        let Some(file) = value(TOKEN_FILE).filter(|f| !f.is_empty()) else {
            bail!("`{TOKEN_FILE}` is empty: workload identity needs the token file's path");
        };
        let file = Path::new(file);
        let Some(folder) = file.parent().filter(|_| file.is_absolute()) else {
            bail!(
                "`{TOKEN_FILE}` ({}) must be an absolute path to a file",
                file.display()
            );
        };
        if !folder.is_dir() {
            bail!(
                "`{TOKEN_FILE}`: the folder {} does not exist (on AKS, the workload identity \
                 webhook mounts it in pods labelled azure.workload.identity/use: \"true\")",
                folder.display()
            );
        }
        let guest = folder
            .to_str()
            .context("the token file's folder is not valid UTF-8")?
            .to_string();
        Ok(Some(Self {
            host: folder.to_path_buf(),
            guest,
        }))
    }

    /// Preopens the folder, read-only, in one request's WASI context.
    pub fn preopen(&self, wasi: &mut WasiCtxBuilder) -> Result<()> {
        wasi.preopened_dir(&self.host, &self.guest, FsPerms::ReadOnly)
            .map_err(|e| anyhow!("cannot open {} for the component: {e}", self.host.display()))?;
        Ok(())
    }

    /// The folder's path, on the host and in the guest.
    pub fn path(&self) -> &Path {
        &self.host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{resolve_variables, Manifest};

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "probe"
[variables]
cosmos_auth = { default = "key" }
entra_token_source = { default = "managed-identity" }
entra_federated_token_file = { default = "/var/run/secrets/azure/tokens/azure-identity-token" }
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "probe.wasm"
[component.probe.variables]
cosmos_auth = "{{ cosmos_auth }}"
entra_token_source = "{{ entra_token_source }}"
entra_federated_token_file = "{{ entra_federated_token_file }}"
"#;

    fn app(vars: &[(&str, &str)]) -> App {
        let m = Manifest::parse(MANIFEST, Path::new("/app")).unwrap();
        let cli: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let res = resolve_variables(&m.variables, &cli, |_| None).unwrap();
        m.resolve(&res.variables).unwrap()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "acr-webhook-token-dir-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn nothing_is_preopened_unless_entra_uses_workload_identity() {
        assert_eq!(TokenDir::for_app(&app(&[])).unwrap(), None);
        let entra_mi = app(&[("cosmos_auth", "entra")]);
        assert_eq!(TokenDir::for_app(&entra_mi).unwrap(), None);
        // Workload identity named, but the key is used: the file is never read.
        let key = app(&[("entra_token_source", "workload-identity")]);
        assert_eq!(TokenDir::for_app(&key).unwrap(), None);
    }

    #[test]
    fn the_token_files_folder_is_preopened_at_the_same_path() {
        let dir = scratch("same-path");
        let file = dir.join("azure-identity-token");
        let app = app(&[
            ("cosmos_auth", "entra"),
            ("entra_token_source", "workload-identity"),
            ("entra_federated_token_file", file.to_str().unwrap()),
        ]);
        let found = TokenDir::for_app(&app)
            .unwrap()
            .expect("a folder to preopen");
        assert_eq!(found.path(), dir.as_path());
        assert_eq!(found.guest, dir.to_str().unwrap());
        let mut wasi = WasiCtxBuilder::new();
        found.preopen(&mut wasi).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_folder_or_a_relative_path_stops_start_up() {
        let missing =
            std::env::temp_dir().join(format!("acr-webhook-no-such-{}", std::process::id()));
        let cases = [
            (
                missing.join("token").to_str().unwrap().to_string(),
                "does not exist",
            ),
            ("tokens/azure-identity-token".to_string(), "absolute"),
            ("".to_string(), "empty"),
        ];
        for (path, needle) in cases {
            let app = app(&[
                ("cosmos_auth", "entra"),
                ("entra_token_source", "workload-identity"),
                ("entra_federated_token_file", &path),
            ]);
            let err = format!("{:#}", TokenDir::for_app(&app).unwrap_err());
            assert!(err.contains(needle), "{path:?}: {err}");
            assert!(err.contains(TOKEN_FILE), "{err}");
        }
    }
}
