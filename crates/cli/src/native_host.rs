//! The core's [`Host`] for the native CLI: blocking HTTP(S) with `ureq`, the process clock.
//! `init`, `replay` and `export` drive the same host-independent core code the component runs.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use acr_webhook_core::{Host, TransportError};

/// Outbound HTTP for the CLI.
pub struct NativeHost {
    agent: ureq::Agent,
    started: Instant,
}

impl Default for NativeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl NativeHost {
    /// A host whose clock starts now.
    pub fn new() -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("acr-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            agent,
            started: Instant::now(),
        }
    }

    /// Sends one request with a timeout (blocking).
    pub fn send_blocking(
        &self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(Some(timeout))
            .build();
        let response = self.agent.run(request).map_err(classify)?;
        let (parts, mut body) = response.into_parts();
        let bytes = body
            .read_to_vec()
            .map_err(|e| TransportError::outcome_unknown(format!("reading the answer: {e}")))?;
        Ok(http::Response::from_parts(parts, bytes))
    }
}

fn classify(error: ureq::Error) -> TransportError {
    match error {
        ureq::Error::Timeout(_) | ureq::Error::Io(_) => {
            TransportError::outcome_unknown(error.to_string())
        }
        other => TransportError::not_sent(other.to_string()),
    }
}

impl Host for NativeHost {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        self.send_blocking(request, timeout)
    }

    async fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn random_u64(&self) -> u64 {
        // Jitter only: the low bits of the clock are random enough.
        let nanos = self.started.elapsed().as_nanos() as u64;
        nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id())
    }

    fn read_file(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("{path}: {}", e.kind()))
    }
}

/// Runs a future whose every await completes at once (the native host blocks inside).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}
