//! Compresses the page's files (`ui/` at the repository root) with gzip at build time and
//! writes the table `src/lib.rs` includes: route, content type, strong ETag (from the SHA-256
//! of the uncompressed file) and the compressed bytes. Only the compressed form is embedded,
//! so the page costs the component its gzip size (see the README, "The audit-trail page").

use std::io::Write as _;
use std::path::PathBuf;

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

/// Route, file in `ui/`, content type.
const FILES: [(&str, &str, &str); 3] = [
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/ui/app.css", "app.css", "text/css; charset=utf-8"),
    ("/ui/app.js", "app.js", "text/javascript; charset=utf-8"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let ui = manifest.join("../../ui");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let mut table =
        String::from("/// Every file of the page.\npub static ASSETS: [Asset; 3] = [\n");
    for (route, file, content_type) in FILES {
        let path = ui.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let hash = Sha256::digest(&text);
        let etag: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
        // No name and mtime 0 in the gzip header: the same file gives the same bytes.
        let mut gz = GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), Compression::best());
        gz.write_all(&text).unwrap();
        let gzip = gz.finish().unwrap();
        let gz_path = out.join(format!("{file}.gz"));
        std::fs::write(&gz_path, &gzip).unwrap();
        table.push_str(&format!(
            "    Asset {{ route: {route:?}, content_type: {content_type:?}, etag: \"\\\"{etag}\\\"\", \
             gzip: include_bytes!({:?}), size: {} }},\n",
            gz_path.display().to_string(),
            text.len()
        ));
    }
    table.push_str("];\n");
    std::fs::write(out.join("assets.rs"), table).unwrap();
}
