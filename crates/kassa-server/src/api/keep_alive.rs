//! Keep-alive connections stay usable after an answer that left the request body unread.
//!
//! An answer given before the body was read (413 for a body over the limit, 401 before a
//! large body, …) leaves hyper with bytes on the connection it will not read: it closes the
//! connection after the answer. It decides that only after the answer's head went out, though,
//! so the head does not say `Connection: close`, and a client that sends its next request on the
//! connection has it fail. This layer notes whether the handler read the body to its end and,
//! when it did not, says `Connection: close` itself: a client then opens a new connection for
//! its next request, as HTTP/1.1 asks of it.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// The middleware. Requests without a body (most GETs) pass untouched.
pub async fn close_if_body_unread(req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = Body::new(Tracked { inner: body, read: read.clone() });
    let mut res = next.run(Request::from_parts(parts, body)).await;
    if !read.load(Ordering::Acquire) {
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// A body that records when it has been read to its end.
struct Tracked {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
