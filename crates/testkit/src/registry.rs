//! A real CNCF Distribution registry (`/usr/bin/docker-registry`, Debian's 2.8.2) that sends
//! real webhook notifications, and image pushes and deletes through `skopeo`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::http;
use crate::net::PortReservation;
use crate::process::{log_tail, ChildGuard};

/// Environment variable naming the registry binary (default `docker-registry` on the PATH).
pub const REGISTRY_BIN_ENV: &str = "ACR_WEBHOOK_DOCKER_REGISTRY";
/// Environment variable naming the skopeo binary (default `skopeo` on the PATH).
pub const SKOPEO_BIN_ENV: &str = "ACR_WEBHOOK_SKOPEO";

/// Docker image manifest, schema 2 (what ACR's webhook examples show).
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST_V1: &str = "application/vnd.oci.image.manifest.v1+json";
/// The `Content-Type` of Distribution's notification requests.
pub const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// A media type no event ever has: listed as ignored when only actions are to be ignored,
/// because Distribution 2.x drops `ignore.actions` unless some media type is ignored too.
const NEVER_MEDIA_TYPE: &str = "application/x.acr-webhook-testkit.never";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the registry sends notifications, and how (one `notifications.endpoints` entry).
///
/// `NotifyEndpoint::new(url)` gives the defaults; the builder methods or struct update syntax
/// (`NotifyEndpoint { url, headers, ..Default::default() }`) change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyEndpoint {
    /// The URL the registry POSTs event envelopes to.
    pub url: String,
    /// Static headers added to every notification, in order; a repeated name becomes a
    /// multi-valued header.
    pub headers: Vec<(String, String)>,
    /// HTTP timeout of one notification request (default 2 s).
    pub timeout: Duration,
    /// Consecutive failures before the registry backs off (default 3).
    pub threshold: u32,
    /// How long the registry backs off after `threshold` failures (default 200 ms).
    pub backoff: Duration,
    /// Target media types whose events are not sent (`ignoredmediatypes`).
    pub ignored_media_types: Vec<String>,
    /// Actions (`push`, `pull`, `delete`, `mount`) whose events are not sent (`ignore.actions`).
    /// Distribution 2.x only honours this when some media type is ignored too, so the
    /// testkit then adds a media type that never occurs.
    pub ignored_actions: Vec<String>,
    /// `notifications.events.includereferences`: list a manifest's config and layers in
    /// `target.references` (default true).
    pub include_references: bool,
}

impl Default for NotifyEndpoint {
    fn default() -> Self {
        NotifyEndpoint {
            url: String::new(),
            headers: Vec::new(),
            timeout: Duration::from_secs(2),
            threshold: 3,
            backoff: Duration::from_millis(200),
            ignored_media_types: Vec::new(),
            ignored_actions: Vec::new(),
            include_references: true,
        }
    }
}

impl NotifyEndpoint {
    /// An endpoint at `url` with the defaults (timeout 2 s, threshold 3, backoff 200 ms,
    /// nothing ignored, references included).
    pub fn new(url: impl Into<String>) -> Self {
        NotifyEndpoint {
            url: url.into(),
            ..Default::default()
        }
    }

    /// Adds a static header, e.g. `.header("Authorization", "Bearer test-key")`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Does not send events with these actions, e.g. `&["pull"]`.
    pub fn ignore_actions(mut self, actions: &[&str]) -> Self {
        self.ignored_actions
            .extend(actions.iter().map(|s| s.to_string()));
        self
    }

    /// Does not send events whose target has one of these media types.
    pub fn ignore_media_types(mut self, media_types: &[&str]) -> Self {
        self.ignored_media_types
            .extend(media_types.iter().map(|s| s.to_string()));
        self
    }
}

/// Which manifest format [`Registry::push_image_with`] writes and pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// Docker image manifest v2 schema 2 ([`DOCKER_MANIFEST_V2`]), `skopeo --format v2s2`.
    #[default]
    DockerV2S2,
    /// OCI image manifest ([`OCI_MANIFEST_V1`]), `skopeo --format oci`.
    Oci,
}

impl ManifestFormat {
    /// The manifest's media type.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestFormat::DockerV2S2 => DOCKER_MANIFEST_V2,
            ManifestFormat::Oci => OCI_MANIFEST_V1,
        }
    }

    fn config_media_type(self) -> &'static str {
        match self {
            ManifestFormat::DockerV2S2 => "application/vnd.docker.container.image.v1+json",
            ManifestFormat::Oci => "application/vnd.oci.image.config.v1+json",
        }
    }

    fn layer_media_type(self) -> &'static str {
        match self {
            ManifestFormat::DockerV2S2 => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            ManifestFormat::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }

    fn skopeo_format(self) -> &'static str {
        match self {
            ManifestFormat::DockerV2S2 => "v2s2",
            ManifestFormat::Oci => "oci",
        }
    }
}

/// Options of [`Registry::push_image_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushOptions {
    /// The manifest format (default Docker v2 schema 2).
    pub format: ManifestFormat,
    /// Seed of the layer content. `None` (default): a fresh seed per call, so every push
    /// has a new digest. `Some(n)`: the same `n` always gives the same image and digest.
    pub seed: Option<u64>,
}

/// What [`Registry::push_image`] pushed. The digests were computed by the testkit from the
/// bytes it wrote, and skopeo was told to keep them (`--preserve-digests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// Repository, e.g. `team/app`.
    pub repository: String,
    /// Tag pushed.
    pub tag: String,
    /// `sha256:...` of the manifest bytes.
    pub digest: String,
    /// The manifest's media type ([`DOCKER_MANIFEST_V2`] or [`OCI_MANIFEST_V1`]).
    pub manifest_media_type: String,
    /// Length of the manifest in bytes (the event's `target.size`).
    pub manifest_size: u64,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// `sha256:...` of the config blob.
    pub config_digest: String,
    /// `sha256:...` of the single layer blob.
    pub layer_digest: String,
}

/// A running Distribution registry on 127.0.0.1 (plain HTTP, no auth, filesystem storage in
/// a temp dir, deletes enabled), optionally notifying one endpoint. Killed on drop.
#[derive(Debug)]
pub struct Registry {
    port: u16,
    child: Option<ChildGuard>,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Writes `config.yml`, starts `docker-registry serve config.yml` on a free port and waits
    /// (up to 30 s) until `GET /v2/` answers 200. Panics with the registry's log otherwise.
    pub fn start(notify: Option<NotifyEndpoint>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("testkit-registry-")
            .tempdir()
            .expect("testkit: cannot create a temp dir");
        std::fs::create_dir_all(dir.path().join("storage")).expect("create storage dir");
        let bin = std::env::var_os(REGISTRY_BIN_ENV).unwrap_or_else(|| "docker-registry".into());
        let log_path = dir.path().join("registry.log");
        let config_path = dir.path().join("config.yml");
        let mut last_err = String::new();
        // A port picked free can be taken before the registry binds it; then try another.
        for _ in 0..3 {
            let port = PortReservation::new()
                .expect("testkit: cannot bind 127.0.0.1:0")
                .release();
            let yaml = config_yaml(port, &dir.path().join("storage"), notify.as_ref());
            std::fs::write(&config_path, yaml).expect("write config.yml");
            let mut cmd = Command::new(&bin);
            cmd.arg("serve").arg(&config_path).current_dir(dir.path());
            let mut child = match ChildGuard::spawn("docker-registry", cmd, &log_path) {
                Ok(c) => c,
                Err(e) => panic!(
                    "testkit: cannot run {} (apt-get install docker-registry): {e}",
                    bin.to_string_lossy()
                ),
            };
            let url = format!("http://127.0.0.1:{port}/v2/");
            match child.wait_until(STARTUP_TIMEOUT, || {
                http::request("GET", &url, &[], None).is_ok_and(|r| r.status == 200)
            }) {
                Ok(()) => {
                    return Registry {
                        port,
                        child: Some(child),
                        dir,
                    }
                }
                Err(e) => last_err = e,
            }
        }
        panic!("testkit: the registry did not start: {last_err}");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `127.0.0.1:PORT`, as used in image references and in the events' `request.host`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The registry's log (stdout and stderr, access log included).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The `config.yml` the registry runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    /// The log of the skopeo runs (commands and their output), appended per call.
    pub fn skopeo_log_path(&self) -> PathBuf {
        self.dir.path().join("skopeo.log")
    }

    /// True while the registry process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// Kills the registry. Idempotent; also done on drop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Pushes a new single-layer image as `repository:tag` in Docker v2 schema 2 format, with
    /// content unique to this call (so the digest is new). Panics if skopeo fails.
    pub fn push_image(&self, repository: &str, tag: &str) -> PushedImage {
        self.push_image_with(repository, tag, PushOptions::default())
    }

    /// Pushes an image built by hand as an OCI image layout (config blob, one small gzip'd
    /// tar layer, OCI manifest, `index.json`, `oci-layout`), tagged `repository:tag`.
    ///
    /// - [`ManifestFormat::Oci`]: `skopeo copy --preserve-digests --format oci oci:DIR:TAG
    ///   docker://HOST/REPO:TAG`; the digest is the sha256 of the manifest written here.
    /// - [`ManifestFormat::DockerV2S2`]: skopeo 1.9 cannot read a Docker manifest from an OCI
    ///   layout, so `skopeo copy --format v2s2 oci:DIR:TAG dir:DIR2` converts it locally
    ///   first; the digest is the sha256 of the `manifest.json` skopeo wrote, which is then
    ///   pushed verbatim (`--preserve-digests --format v2s2 dir:DIR2 docker://...`).
    ///
    /// Either way the digest skopeo reports (`--digestfile`) must equal the computed one.
    /// Panics if skopeo fails.
    pub fn push_image_with(&self, repository: &str, tag: &str, opts: PushOptions) -> PushedImage {
        self.try_push_image_with(repository, tag, opts)
            .unwrap_or_else(|e| panic!("testkit: push {repository}:{tag} failed: {e}"))
    }

    /// Like [`Registry::push_image_with`] but returns skopeo's failure instead of panicking.
    pub fn try_push_image_with(
        &self,
        repository: &str,
        tag: &str,
        opts: PushOptions,
    ) -> Result<PushedImage, String> {
        let work = tempfile::Builder::new()
            .prefix("push-")
            .tempdir_in(self.dir.path())
            .map_err(|e| e.to_string())?;
        let layout = work.path().join("oci");
        let seed = opts.seed.unwrap_or_else(fresh_seed);
        let oci = write_oci_layout(&layout, repository, tag, seed)
            .map_err(|e| format!("writing the OCI layout: {e}"))?;
        let oci_src = format!("oci:{}:{tag}", layout.display());
        let (src, image) = match opts.format {
            ManifestFormat::Oci => (oci_src, oci),
            ManifestFormat::DockerV2S2 => {
                // skopeo 1.9 does not read a Docker manifest from an OCI layout, so let
                // skopeo convert locally (no registry traffic, no extra events) into a `dir:`
                // copy, and take the manifest bytes it will push from there.
                let converted = work.path().join("v2s2");
                self.skopeo(&[
                    "copy",
                    "--quiet",
                    "--format",
                    "v2s2",
                    &oci_src,
                    &format!("dir:{}", converted.display()),
                ])?;
                let manifest = std::fs::read(converted.join("manifest.json"))
                    .map_err(|e| format!("reading the converted manifest: {e}"))?;
                let image = pushed_image(repository, tag, manifest)?;
                (format!("dir:{}", converted.display()), image)
            }
        };
        let digest_file = work.path().join("pushed-digest");
        let dest = format!("docker://{}/{repository}:{tag}", self.host());
        self.skopeo(&[
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--format",
            opts.format.skopeo_format(),
            "--digestfile",
            &digest_file.to_string_lossy(),
            &src,
            &dest,
        ])?;
        let reported = std::fs::read_to_string(&digest_file).unwrap_or_default();
        if reported.trim() != image.digest {
            return Err(format!(
                "skopeo pushed digest {:?}, the testkit computed {}",
                reported.trim(),
                image.digest
            ));
        }
        if image.manifest_media_type != opts.format.media_type() {
            return Err(format!(
                "pushed a {} manifest, wanted {}",
                image.manifest_media_type,
                opts.format.media_type()
            ));
        }
        Ok(image)
    }

    /// Deletes a manifest with `skopeo delete`; `reference` is a digest (`sha256:...`) or a
    /// tag (skopeo resolves a tag to its digest first, so every tag of that manifest goes).
    /// Panics if skopeo fails.
    pub fn delete_image(&self, repository: &str, reference: &str) {
        self.try_delete_image(repository, reference)
            .unwrap_or_else(|e| panic!("testkit: delete {repository} {reference} failed: {e}"))
    }

    /// Like [`Registry::delete_image`] but returns skopeo's failure instead of panicking.
    pub fn try_delete_image(&self, repository: &str, reference: &str) -> Result<(), String> {
        let target = image_ref(&self.host(), repository, reference);
        self.skopeo(&["delete", "--tls-verify=false", &target])
    }

    /// The digest the registry serves for `repository` at `reference` (tag or digest), from a
    /// `HEAD` of the manifest (`Docker-Content-Digest`); `None` on 404.
    pub fn manifest_digest(&self, repository: &str, reference: &str) -> Option<String> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url());
        let accept = format!("{DOCKER_MANIFEST_V2}, {OCI_MANIFEST_V1}");
        let r = http::request("HEAD", &url, &[("Accept", accept.as_str())], None)
            .unwrap_or_else(|e| panic!("testkit: HEAD {url}: {e}"));
        match r.status {
            200 => r.header("Docker-Content-Digest").map(str::to_string),
            404 => None,
            s => panic!("testkit: HEAD {url} answered {s}"),
        }
    }

    fn skopeo(&self, args: &[&str]) -> Result<(), String> {
        let bin = std::env::var_os(SKOPEO_BIN_ENV).unwrap_or_else(|| "skopeo".into());
        let mut cmd = Command::new(&bin);
        // The policy must not depend on the machine's /etc/containers/policy.json.
        cmd.arg("--insecure-policy").args(args);
        let out = cmd.output().map_err(|e| {
            format!(
                "cannot run {} (apt-get install skopeo): {e}",
                bin.to_string_lossy()
            )
        })?;
        let mut entry = format!(
            "$ {} --insecure-policy {}\n",
            bin.to_string_lossy(),
            args.join(" ")
        );
        entry.push_str(&String::from_utf8_lossy(&out.stdout));
        entry.push_str(&String::from_utf8_lossy(&out.stderr));
        let _ = writeln!(entry, "-> {}", out.status);
        append(&self.skopeo_log_path(), &entry);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{entry}registry log ({}):\n{}",
                self.log_path().display(),
                log_tail(&self.log_path(), 20)
            ))
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        crate::process::keep_dir_if_wanted(&mut self.dir, "registry");
    }
}

/// `docker://HOST/REPO@sha256:...` or `docker://HOST/REPO:TAG`.
fn image_ref(host: &str, repository: &str, reference: &str) -> String {
    if reference.contains(':') {
        format!("docker://{host}/{repository}@{reference}")
    } else {
        format!("docker://{host}/{repository}:{reference}")
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// A JSON string literal, which is also a valid YAML double-quoted scalar.
fn q(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The registry configuration the testkit runs with.
fn config_yaml(port: u16, storage: &Path, notify: Option<&NotifyEndpoint>) -> String {
    let mut y = String::new();
    let _ = write!(
        y,
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  fields:\n    service: testkit-registry\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: testkit-not-a-secret\n",
        q(&storage.to_string_lossy())
    );
    if let Some(n) = notify {
        let _ = write!(
            y,
            "notifications:\n  events:\n    includereferences: {}\n  endpoints:\n    - name: testkit\n      \
             disabled: false\n      url: {}\n      timeout: {}\n      threshold: {}\n      backoff: {}\n",
            n.include_references,
            q(&n.url),
            go_duration(n.timeout),
            n.threshold,
            go_duration(n.backoff)
        );
        // Values must be lists; a repeated name gathers its values in order.
        let mut names: Vec<&str> = Vec::new();
        for (k, _) in &n.headers {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
        y.push_str(if names.is_empty() {
            "      headers: {}\n"
        } else {
            "      headers:\n"
        });
        for k in names {
            let values: Vec<String> = n
                .headers
                .iter()
                .filter(|(name, _)| name == k)
                .map(|(_, v)| q(v))
                .collect();
            let _ = writeln!(y, "        {}: [{}]", q(k), values.join(", "));
        }
        let mut media_types = n.ignored_media_types.clone();
        if !n.ignored_actions.is_empty() && media_types.is_empty() {
            media_types.push(NEVER_MEDIA_TYPE.to_string());
        }
        if !media_types.is_empty() || !n.ignored_actions.is_empty() {
            let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
            let _ = write!(
                y,
                "      ignore:\n        mediatypes: [{}]\n        actions: [{}]\n",
                list(&media_types),
                list(&n.ignored_actions)
            );
        }
    }
    y
}

/// A seed nobody used before in this process (counter, clock and pid mixed).
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    splitmix64(nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `sha256:<lower-case hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in hash.iter() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn write_blob(layout: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let digest = sha256_digest(bytes);
    let hex = &digest["sha256:".len()..];
    std::fs::write(layout.join("blobs/sha256").join(hex), bytes)?;
    Ok(digest)
}

/// Writes an OCI image layout with one image tagged `tag` and returns what it holds.
fn write_oci_layout(
    layout: &Path,
    repository: &str,
    tag: &str,
    seed: u64,
) -> std::io::Result<PushedImage> {
    let format = ManifestFormat::Oci;
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;

    // Layer: a tar with one file of seeded pseudo-random content, gzip'd.
    let mut state = seed;
    let mut content = format!("acr-webhook testkit layer, seed {seed}\n").into_bytes();
    for _ in 0..32 {
        state = splitmix64(state);
        content.extend_from_slice(&state.to_le_bytes());
    }
    let tar = tar_one_file(&format!("testkit/{seed:016x}.bin"), &content);
    let diff_id = sha256_digest(&tar);
    let layer = gzip(&tar);
    let layer_digest = write_blob(layout, &layer)?;

    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Labels": { "org.example.testkit.seed": seed.to_string() } },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    let config = serde_json::to_vec(&config).expect("json");
    let config_digest = write_blob(layout, &config)?;

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": format.media_type(),
        "config": {
            "mediaType": format.config_media_type(),
            "size": config.len(),
            "digest": config_digest,
        },
        "layers": [{
            "mediaType": format.layer_media_type(),
            "size": layer.len(),
            "digest": layer_digest,
        }],
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let digest = write_blob(layout, &manifest)?;

    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": format.media_type(),
            "digest": digest,
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;

    debug_assert_eq!(digest, sha256_digest(&manifest));
    pushed_image(repository, tag, manifest).map_err(std::io::Error::other)
}

/// Describes a pushed image from its manifest bytes (digest computed here).
fn pushed_image(repository: &str, tag: &str, manifest: Vec<u8>) -> Result<PushedImage, String> {
    let m: Value =
        serde_json::from_slice(&manifest).map_err(|e| format!("manifest is not JSON: {e}"))?;
    let field = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("unexpected manifest: {m}"))
    };
    Ok(PushedImage {
        repository: repository.to_string(),
        tag: tag.to_string(),
        digest: sha256_digest(&manifest),
        manifest_media_type: field(&m["mediaType"])?,
        manifest_size: manifest.len() as u64,
        config_digest: field(&m["config"]["digest"])?,
        layer_digest: field(&m["layers"][0]["digest"])?,
        manifest,
    })
}

/// A ustar archive holding one regular file.
fn tar_one_file(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// `data` as one gzip member.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .expect("gzip into memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn the_layer_is_the_tar_gzipped() {
        let tar = tar_one_file("a/b.txt", b"hello");
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(gzip(&tar).as_slice())
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, tar);
    }

    #[test]
    fn tar_is_block_aligned_with_valid_checksum() {
        let t = tar_one_file("a/b.txt", b"hello");
        assert_eq!(t.len() % 512, 0);
        assert_eq!(t.len(), 512 + 512 + 1024);
        let stored: u32 =
            u32::from_str_radix(std::str::from_utf8(&t[148..154]).unwrap(), 8).unwrap();
        let mut h = t[..512].to_vec();
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|&b| u32::from(b)).sum::<u32>());
    }

    #[test]
    fn config_lists_header_values_and_ignores() {
        let n = NotifyEndpoint::new("http://127.0.0.1:1/events")
            .header("Authorization", "Bearer test-key")
            .header("X-Multi", "a")
            .header("X-Multi", "b")
            .ignore_actions(&["pull"]);
        let y = config_yaml(5000, Path::new("/tmp/s"), Some(&n));
        assert!(
            y.contains("\"Authorization\": [\"Bearer test-key\"]"),
            "{y}"
        );
        assert!(y.contains("\"X-Multi\": [\"a\", \"b\"]"), "{y}");
        assert!(
            y.contains(&format!("mediatypes: [\"{NEVER_MEDIA_TYPE}\"]")),
            "{y}"
        );
        assert!(y.contains("actions: [\"pull\"]"), "{y}");
        assert!(y.contains("backoff: 200ms"), "{y}");
        assert!(y.contains("addr: 127.0.0.1:5000"), "{y}");
    }

    #[test]
    fn same_seed_same_digest() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let x = write_oci_layout(a.path(), "r", "t", 7).unwrap();
        let y = write_oci_layout(b.path(), "r", "t", 7).unwrap();
        let z = write_oci_layout(b.path(), "r", "t", 8).unwrap();
        assert_eq!(x.digest, y.digest);
        assert_ne!(x.digest, z.digest);
        assert_eq!(x.digest, sha256_digest(&x.manifest));
    }
}
