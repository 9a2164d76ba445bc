//! The Spin component: a thin adapter between Spin (WASI 0.2 `wasi:http`, Spin variables) and
//! the host-independent core in `acr-webhook-core`. It moves bytes, headers and the clock in,
//! sends the signed requests the core builds, and writes the core's answer out. Every decision
//! (routes, keys, parsing, documents, signing, statuses) lives in the core.

#[cfg(target_arch = "wasm32")]
mod spin_adapter {
    use std::time::SystemTime;

    use acr_webhook_core::{
        handle, log_line, respond, BodyError, Config, RequestBody, Transport, TransportError,
    };
    use futures::StreamExt;
    use spin_sdk::http::{
        Fields, IncomingRequest, IncomingResponse, OutgoingResponse, ResponseOutparam,
    };

    /// Entry point: one incoming request, one answer, never a panic on any input.
    #[spin_sdk::http_component]
    async fn handle_request(request: IncomingRequest, response_out: ResponseOutparam) {
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
                    || Config::from_lookup(|name| spin_sdk::variables::get(name).ok()),
                    &SpinTransport,
                    SystemTime::now(),
                )
                .await;
                (
                    respond(&outcome),
                    log_line(&head.method, head.uri.path(), &outcome),
                )
            }
            Err(reason) => {
                let outcome = Err(acr_webhook_core::Failure::BodyUnreadable(reason.into()));
                let line = format!("{method_name} (unparsable request line) 400");
                (respond(&outcome), line)
            }
        };
        eprintln!("acr-webhook: {line}");
        write_response(response, response_out).await;
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
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder
            .body(())
            .map(|r| r.into_parts().0)
            .map_err(|_| "invalid request head")
    }

    /// The incoming body, read chunk by chunk, stopping as soon as the limit is passed.
    struct StreamingBody(IncomingRequest);

    impl RequestBody for StreamingBody {
        async fn read_to_end(self, limit: usize) -> Result<Vec<u8>, BodyError> {
            let mut stream = std::pin::pin!(self.0.into_body_stream());
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| BodyError::Io(e.to_string()))?;
                if body.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }
    }

    /// Outbound HTTP through Spin (`wasi:http/outgoing-handler`).
    struct SpinTransport;

    impl Transport for SpinTransport {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            let response: IncomingResponse = spin_sdk::http::send(request)
                .await
                .map_err(|e| TransportError(e.to_string()))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers().entries() {
                builder = builder.header(name, value);
            }
            let body = response
                .into_body()
                .await
                .map_err(|e| TransportError(format!("reading the answer failed: {e}")))?;
            builder
                .body(body)
                .map_err(|e| TransportError(format!("unusable answer: {e}")))
        }
    }

    async fn write_response(response: http::Response<Vec<u8>>, out: ResponseOutparam) {
        let (parts, body) = response.into_parts();
        let headers: Vec<(String, Vec<u8>)> = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
        let outgoing = OutgoingResponse::new(fields);
        let _ = outgoing.set_status_code(parts.status.as_u16());
        if let Err(e) = out.set_with_body(outgoing, body).await {
            eprintln!("acr-webhook: writing the answer failed: {e}");
        }
    }
}
