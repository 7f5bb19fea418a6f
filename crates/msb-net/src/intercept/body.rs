//! A request body streamed upstream (not buffered) while it is scanned for placeholders of
//! secrets the request may not carry: on one, the body fails before the chunk holding it is
//! passed on, which aborts the upstream request, and the hit is recorded for the answer.

use super::proxy::BoxError;
use super::scan::{Needles, StreamScan};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

/// `inner`, scanned.
pub(crate) struct Scanned {
    inner: Incoming,
    needles: Needles,
    forbidden: Vec<bool>,
    scan: StreamScan,
    hit: Arc<OnceLock<usize>>,
}

impl Scanned {
    /// `inner` scanned for the needles `forbidden` marks; the secret found, once found, in
    /// the returned cell.
    pub(crate) fn new(inner: Incoming, needles: Needles, forbidden: Vec<bool>) -> (Scanned, Arc<OnceLock<usize>>) {
        let hit = Arc::new(OnceLock::new());
        let body = Scanned {
            inner,
            needles,
            forbidden,
            scan: StreamScan::default(),
            hit: hit.clone(),
        };
        (body, hit)
    }
}

impl Body for Scanned {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            let forbidden = &this.forbidden;
            let found = this
                .scan
                .feed_where(&this.needles, data, |i| forbidden.get(i).copied().unwrap_or(false));
            if let Some(secret) = found {
                let _ = this.hit.set(secret);
                return Poll::Ready(Some(Err("a secret placeholder in the request body".into())));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
