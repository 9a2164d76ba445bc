//! Prints what `request_parser` makes of input files (a corpus entry or a crash artifact):
//! the decoded request, then the status and the log line the handler gives, without the
//! fuzzer's checks. `cargo run --manifest-path fuzz/Cargo.toml --example show_request -- FILE...`

use acr_webhook_core::{handle, log_line, respond};
use acr_webhook_fuzz::{block_on, config, now, MemoryStore, RequestInput};
use arbitrary::{Arbitrary, Unstructured};

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap();
        let input = match RequestInput::arbitrary_take_rest(Unstructured::new(&bytes)) {
            Ok(input) => input,
            Err(e) => {
                println!("{path}: not decodable: {e}");
                continue;
            }
        };
        let Some(built) = input.build() else {
            println!("{path}: the http crate refuses {input:?}");
            continue;
        };
        let store = MemoryStore::new();
        let outcome = block_on(handle(
            &built.head,
            input.body.0.clone(),
            Ok(config()),
            &store,
            now(),
        ));
        let response = respond(&outcome);
        println!(
            "{path}: {} {} ({} body bytes, {} store requests)\n  {}\n  {}",
            built.head.method,
            built.head.uri,
            input.body.0.len(),
            store.sent.borrow().len(),
            log_line(&built.head.method, built.head.uri.path(), &outcome),
            String::from_utf8_lossy(&response.body()[..response.body().len().min(300)])
        );
    }
}
