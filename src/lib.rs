//! The Spin component: a thin adapter between Spin (WASI 0.2 `wasi:http`, Spin variables) and
//! the host-independent core in `acr-webhook-core`. It moves bytes, headers, time,
//! randomness, the key-value token cache and the federated token file in, sends the requests
//! the core builds (each with its own timeout), and writes the core's answer out. Every decision (routes, keys, parsing, documents, signing,
//! retries, statuses) lives in the core.

#[cfg(target_arch = "wasm32")]
mod spin_adapter {
    use std::time::{Duration, SystemTime};

    use acr_webhook_core::{
        handle, known_header, log_line, respond, BodyError, Failure, Host, RequestBody,
        TransportError, VariableSource, ANSWER_HEADERS, REQUEST_HEADERS,
    };
    use spin_executor::CancelOnDropToken;
    use spin_sdk::http::{
        Fields, IncomingRequest, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
        OutgoingResponse, ResponseOutparam, Scheme,
    };
    use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
    use spin_sdk::wit::wasi::http0_2_0::types::RequestOptions;
    use wasi::clocks::monotonic_clock;
    use wasi::io::poll::{self, Pollable};
    use wasi::io::streams::{InputStream, StreamError};

    /// Largest chunk written to an output stream at once (wasi:io's blocking write limit).
    const WRITE_CHUNK: usize = 4096;
    /// Largest chunk read at once.
    const READ_CHUNK: u64 = 64 * 1024;

    /// Entry point: one incoming request, one answer, never a panic on any input.
    #[spin_sdk::http_component]
    async fn handle_request(request: IncomingRequest, response_out: ResponseOutparam) {
        let host = SpinHost {
            started: monotonic_clock::now(),
        };
        let method_name = request.method().to_string();
        let head = request_head(
            &method_name,
            request.path_with_query(),
            request.headers().entries(),
        );
        let (response, line) = match head {
            Ok(head) => {
                let outcome = handle(
                    &head,
                    StreamingBody(request),
                    VariableSource::new(|name: &str| spin_sdk::variables::get(name).ok()),
                    &host,
                    SystemTime::now(),
                )
                .await;
                let line = log_line(&head.method, head.uri.path(), &outcome);
                (respond(&outcome), line)
            }
            Err(reason) => {
                let outcome = Err(Failure::BodyUnreadable(reason.into()));
                let line = format!("{method_name} (unusable request head) 400");
                (respond(&outcome), line)
            }
        };
        log(&line);
        write_response(response, response_out);
    }

    /// One line on stderr, in one write. Unlike `eprintln!`, a failed write is ignored instead
    /// of panicking (a panic here would lose the answer, and links std's I/O error messages).
    fn log(line: &str) {
        use std::io::Write as _;
        let mut text = String::with_capacity(line.len() + 14);
        text.push_str("acr-webhook: ");
        text.push_str(line);
        text.push('\n');
        let _ = std::io::stderr().write_all(text.as_bytes());
    }

    /// Rebuilds the request head as `http` types (the URI is path-only on some hosts and
    /// absolute on Spin; the core reads only path and query).
    fn request_head(
        method: &str,
        path_with_query: Option<String>,
        headers: Vec<(String, Vec<u8>)>,
    ) -> Result<http::request::Parts, &'static str> {
        let mut builder = http::Request::builder()
            .method(http::Method::from_bytes(method.as_bytes()).map_err(|_| "invalid method")?)
            .uri(path_with_query.unwrap_or_else(|| "/".into()));
        // Only the headers the core reads, by their constants: no header name is parsed.
        for (name, value) in headers {
            if let Some(name) = known_header(&REQUEST_HEADERS, &name) {
                builder = builder.header(name, value);
            }
        }
        builder
            .body(())
            .map(|r| r.into_parts().0)
            .map_err(|_| "invalid request head")
    }

    /// Waits until the pollable `subscribe` makes is ready or `deadline` (monotonic ns)
    /// passes, false on timeout, without blocking the component's other futures: while it
    /// waits, Spin's executor polls both pollables (with those of the other requests in
    /// flight) and wakes the caller.
    async fn ready_by(subscribe: impl Fn() -> Pollable, deadline: u64) -> bool {
        let mut tokens: Vec<CancelOnDropToken> = Vec::new();
        std::future::poll_fn(|cx| {
            tokens.clear();
            if subscribe().ready() {
                return std::task::Poll::Ready(true);
            }
            if monotonic_clock::now() >= deadline {
                return std::task::Poll::Ready(false);
            }
            for pollable in [subscribe(), monotonic_clock::subscribe_instant(deadline)] {
                let token = spin_executor::push_waker_and_get_token(pollable, cx.waker().clone());
                tokens.push(token.into());
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Waits until `stream` has data or `deadline` (monotonic ns) passes; false on timeout.
    fn wait_readable(stream: &InputStream, deadline: u64) -> bool {
        let now = monotonic_clock::now();
        if now >= deadline {
            return false;
        }
        let ready = stream.subscribe();
        let timer = monotonic_clock::subscribe_instant(deadline);
        poll::poll(&[&ready, &timer]).contains(&0)
    }

    /// Reads a whole stream within a deadline and a size limit.
    fn read_stream(
        stream: &InputStream,
        limit: usize,
        deadline: u64,
    ) -> Result<Vec<u8>, BodyError> {
        let mut body = Vec::new();
        loop {
            if !wait_readable(stream, deadline) {
                return Err(BodyError::TimedOut);
            }
            match stream.read(READ_CHUNK) {
                Ok(chunk) => {
                    if body.len() + chunk.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => return Ok(body),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(BodyError::Io(e.to_debug_string()))
                }
            }
        }
    }

    fn deadline_after(timeout: Duration) -> u64 {
        monotonic_clock::now().saturating_add(timeout.as_nanos().min(u64::MAX as u128) as u64)
    }

    /// The incoming body, read chunk by chunk, stopping at the limit or the deadline.
    struct StreamingBody(IncomingRequest);

    impl RequestBody for StreamingBody {
        async fn read_to_end(self, limit: usize, timeout: Duration) -> Result<Vec<u8>, BodyError> {
            let deadline = deadline_after(timeout);
            let body = self
                .0
                .consume()
                .map_err(|()| BodyError::Io("body already consumed".into()))?;
            let stream = body
                .stream()
                .map_err(|()| BodyError::Io("body stream unavailable".into()))?;
            read_stream(&stream, limit, deadline)
        }
    }

    /// What Spin provides: outbound HTTP with per-request timeouts, the monotonic clock,
    /// sleeping and randomness.
    struct SpinHost {
        started: u64,
    }

    impl Host for SpinHost {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
            timeout: Duration,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            send_with_timeout(request, timeout).await
        }

        async fn sleep(&self, duration: Duration) {
            let deadline = deadline_after(duration);
            ready_by(|| monotonic_clock::subscribe_instant(deadline), deadline).await;
        }

        fn elapsed(&self) -> Duration {
            Duration::from_nanos(monotonic_clock::now().saturating_sub(self.started))
        }

        fn random_u64(&self) -> u64 {
            wasi::random::random::get_random_u64()
        }

        /// Spin's key-value store `default` (`key_value_stores = ["default"]` in spin.toml):
        /// the Entra ID token cache. A host without one (or that denies it) keeps nothing, and
        /// a token is then fetched for every request.
        async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
            spin_sdk::key_value::Store::open_default()
                .ok()?
                .get(key)
                .ok()
                .flatten()
        }

        async fn cache_set(&self, key: &str, value: &[u8]) {
            if let Ok(store) = spin_sdk::key_value::Store::open_default() {
                if store.set(key, value).is_err() {
                    log("the token cache (key-value store `default`) refused a write");
                }
            }
        }

        /// A file in a folder the host gives the component (Spin's `files`, `wasmtime serve
        /// --dir`, `acr-webhook up`): workload identity's federated token. Read through
        /// `wasi:filesystem/preopens`, not `std::fs`: the preview1 proxy adapter of `up` and
        /// stock wasmtime shows `std::fs` no preopened folder.
        fn read_file(&self, path: &str) -> Result<String, String> {
            read_preopened(path)
        }
    }

    /// `wasi:http/outgoing-handler` with connect, first-byte and between-bytes timeouts, the
    /// answer read to its end within the same timeout. Other requests may be in flight while
    /// this one waits for its answer's head.
    async fn send_with_timeout(
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let deadline = deadline_after(timeout);
        let nanos = timeout.as_nanos().min(u64::MAX as u128) as u64;
        let (parts, body) = request.into_parts();
        let headers: Vec<(String, Vec<u8>)> = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let not_sent = |what: &str| TransportError::not_sent(what.to_owned());
        let fields =
            Fields::from_list(&headers).map_err(|_| not_sent("invalid request headers"))?;
        let outgoing = OutgoingRequest::new(fields);
        let method = match parts.method {
            http::Method::GET => Method::Get,
            http::Method::POST => Method::Post,
            http::Method::PUT => Method::Put,
            http::Method::DELETE => Method::Delete,
            ref other => Method::Other(other.as_str().to_owned()),
        };
        let scheme = match parts.uri.scheme_str() {
            Some("https") => Scheme::Https,
            _ => Scheme::Http,
        };
        outgoing
            .set_method(&method)
            .and_then(|()| outgoing.set_scheme(Some(&scheme)))
            .and_then(|()| outgoing.set_authority(parts.uri.authority().map(|a| a.as_str())))
            .and_then(|()| {
                outgoing.set_path_with_query(parts.uri.path_and_query().map(|p| p.as_str()))
            })
            .map_err(|()| not_sent("invalid request line"))?;
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));

        let outgoing_body = outgoing.body().map_err(|()| not_sent("no request body"))?;
        let future = outgoing_handler::handle(outgoing, Some(options))
            .map_err(|e| TransportError::not_sent(format!("{e:?}")))?;
        {
            let stream = outgoing_body
                .write()
                .map_err(|()| not_sent("request body not writable"))?;
            for chunk in body.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| TransportError::outcome_unknown(format!("sending: {e:?}")))?;
            }
        }
        OutgoingBody::finish(outgoing_body, None)
            .map_err(|e| TransportError::outcome_unknown(format!("{e:?}")))?;

        if !ready_by(|| future.subscribe(), deadline).await {
            return Err(TransportError::outcome_unknown("no answer in time"));
        }
        let response: IncomingResponse = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => {
                return Err(TransportError::outcome_unknown(format!("{code:?}")));
            }
            _ => return Err(TransportError::outcome_unknown("no answer")),
        };
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers().entries() {
            if let Some(name) = known_header(&ANSWER_HEADERS, &name) {
                builder = builder.header(name, value);
            }
        }
        let incoming = response
            .consume()
            .map_err(|()| TransportError::outcome_unknown("answer body unavailable"))?;
        let body = {
            let stream = incoming
                .stream()
                .map_err(|()| TransportError::outcome_unknown("answer body unavailable"))?;
            read_stream(&stream, 16 << 20, deadline)
                .map_err(|e| TransportError::outcome_unknown(format!("reading the answer: {e}")))?
        };
        builder
            .body(body)
            .map_err(|e| TransportError::outcome_unknown(format!("unusable answer: {e}")))
    }

    /// The largest file [`read_preopened`] reads (a federated token is about 1 KB).
    const MAX_FILE_BYTES: usize = 64 * 1024;

    /// Reads `path` (absolute) from the preopened folder that holds it, following symbolic
    /// links inside it (Kubernetes mounts projected tokens through `..data` links).
    fn read_preopened(path: &str) -> Result<String, String> {
        use wasi::filesystem::preopens::get_directories;
        use wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
        let folders = get_directories();
        let (folder, inside) = folders
            .iter()
            .filter_map(|(folder, at)| {
                let rest = path.strip_prefix(at.trim_end_matches('/'))?;
                Some((folder, rest.strip_prefix('/')?))
            })
            .min_by_key(|(_, inside)| inside.len())
            .ok_or_else(|| format!("{path}: in no folder the host gives the component"))?;
        let file = folder
            .open_at(
                PathFlags::SYMLINK_FOLLOW,
                inside,
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .map_err(|e| format!("{path}: {}", e.name()))?;
        let mut bytes = Vec::new();
        loop {
            let (chunk, end) = file
                .read(MAX_FILE_BYTES as u64, bytes.len() as u64)
                .map_err(|e| format!("{path}: {}", e.name()))?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_FILE_BYTES {
                return Err(format!("{path}: larger than {MAX_FILE_BYTES} bytes"));
            }
            if end || chunk.is_empty() {
                break;
            }
        }
        String::from_utf8(bytes).map_err(|_| format!("{path}: not UTF-8 text"))
    }

    fn write_response(response: http::Response<Vec<u8>>, out: ResponseOutparam) {
        let (parts, body) = response.into_parts();
        let headers: Vec<(String, Vec<u8>)> = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
        let outgoing = OutgoingResponse::new(fields);
        let _ = outgoing.set_status_code(parts.status.as_u16());
        let Ok(outgoing_body) = outgoing.body() else {
            return;
        };
        out.set(outgoing);
        if let Ok(stream) = outgoing_body.write() {
            for chunk in body.chunks(WRITE_CHUNK) {
                if stream.blocking_write_and_flush(chunk).is_err() {
                    log("writing the answer failed");
                    return;
                }
            }
        }
        let _ = OutgoingBody::finish(outgoing_body, None);
    }
}

/// The WIT description (`component-type` custom section) of the imports the component has
/// beyond the `wasi:http` proxy world: `fermyon:spin/variables@2.0.0`,
/// `fermyon:spin/key-value@2.0.0` and `wasi:filesystem/preopens@0.2.0`, from `wit/` (verbatim
/// copies of spin-sdk 5.2.0's and the `wasi` crate's interfaces), encoded by the same
/// wit-bindgen spin-sdk uses.
///
/// spin-sdk also embeds a 39 KB description of the whole Spin platform (key-value, SQLite,
/// Redis, MQTT, ...), of which the component uses only that one interface; `make wasm` drops
/// it, and this section plus spin-sdk's `wasi-http-trigger` one still describe every import, so
/// Spin and `acr-webhook up` make the same component from the smaller module. No code is
/// generated here that the component calls.
#[cfg(target_arch = "wasm32")]
mod spin_variables_world {
    spin_sdk::wit_bindgen::generate!({
        world: "fermyon:spin/host",
        path: "wit",
        runtime_path: "spin_sdk::wit_bindgen::rt",
        // The WASI interfaces are the `wasi` crate's, which the adapter calls.
        with: {
            "wasi:io/error@0.2.0": wasi::io::error,
            "wasi:io/poll@0.2.0": wasi::io::poll,
            "wasi:io/streams@0.2.0": wasi::io::streams,
            "wasi:clocks/wall-clock@0.2.0": wasi::clocks::wall_clock,
            "wasi:filesystem/types@0.2.0": wasi::filesystem::types,
            "wasi:filesystem/preopens@0.2.0": wasi::filesystem::preopens,
        },
    });
}
