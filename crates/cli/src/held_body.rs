//! An answer's body that holds something until the body is done or dropped: the request's
//! slot, or the mark that keeps its connection from being closed for room.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};

/// `inner`, holding `held` for as long as hyper holds the body.
pub struct HeldBody<B, H> {
    inner: B,
    _held: H,
}

impl<B, H> HeldBody<B, H> {
    /// `inner`, holding `held` until the body is dropped.
    pub fn new(inner: B, held: H) -> Self {
        Self { inner, _held: held }
    }
}

impl<B: Body + Unpin, H: Unpin> Body for HeldBody<B, H> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
