//! Request bodies as raw bytes, bounded in size and in time. Signatures
//! cover the exact bytes received, so handlers get them before any parsing.
//!
//! **Deadline**: a client has `http.body_timeout_s` from the moment its
//! request head was read to send the whole body; a body still incomplete
//! then fails with [`BodyTimeout`], which [`RawBody`] answers 408
//! `request_timeout` (with `Connection: close`). The deadline is for the
//! whole body, not per chunk, so a client trickling one byte at a time
//! cannot hold a request (and its concurrency slot) open for longer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use http_body::Frame;

use super::error::ApiError;
use crate::app::App;

/// The raw request body, at most `http.max_body_bytes` long.
pub struct RawBody(pub Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = App::from_ref(state).config.http.max_body_bytes;
        let too_large = || {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {limit} bytes"),
            )
        };
        // Refuse a declared oversize body before reading any of it.
        if let Some(length) = req.headers().get(header::CONTENT_LENGTH)
            && let Some(length) = length.to_str().ok().and_then(|v| v.parse::<u64>().ok())
            && length > limit as u64
        {
            return Err(too_large());
        }
        match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(e) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(err) = source {
                    if err.is::<http_body_util::LengthLimitError>() {
                        return Err(too_large());
                    }
                    if err.is::<BodyTimeout>() {
                        let app = App::from_ref(state);
                        app.metrics
                            .http_refused
                            .get_or_create(&crate::metrics::StateLabel {
                                state: "body_timeout",
                            })
                            .inc();
                        return Err(ApiError::new(
                            axum::http::StatusCode::REQUEST_TIMEOUT,
                            "request_timeout",
                            format!(
                                "the request body was not received within {} s (http.body_timeout_s)",
                                app.config.http.body_timeout_s
                            ),
                        ));
                    }
                    source = err.source();
                }
                Err(ApiError::bad_request("could not read the request body"))
            }
        }
    }
}

/// Parses a JSON body into `T`, mapping errors to 400 (not JSON) or 422
/// (JSON of the wrong shape), naming the field where serde can.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Err(ApiError::bad_request("body is not valid JSON"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        ApiError::unprocessable("invalid", message)
    })
}

/// The body was not complete by its deadline (`http.body_timeout_s`).
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body deadline passed")
    }
}

impl std::error::Error for BodyTimeout {}

/// Puts the body deadline on the request (`timeout` from now, i.e. from the
/// end of its head), and answers `Connection: close` when a request's body
/// was not read to its end — a declared oversize body refused unread, a
/// throttled or unrouted request, a body past its deadline. The server
/// drops such a connection after answering (the rest of the body is still
/// in flight), and a keep-alive client that reused it would see its next
/// request fail mid-send; the header tells it not to.
pub async fn close_if_body_unread(
    axum::extract::State(timeout): axum::extract::State<Duration>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::body::HttpBody;
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::new(TrackEnd {
        inner: body,
        read_to_end: read_to_end.clone(),
        deadline: Box::pin(tokio::time::sleep(timeout)),
        expired: false,
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if !read_to_end.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records whether it was read to its end, and fails
/// once its deadline passes.
struct TrackEnd {
    inner: Body,
    read_to_end: Arc<AtomicBool>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl axum::body::HttpBody for TrackEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.expired {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout))));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read_to_end.store(true, Ordering::Release);
        }
        if polled.is_pending() && self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout))));
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
