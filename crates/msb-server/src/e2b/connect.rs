//! The Connect protocol's HTTP side: a request's codec from its headers, answers with the
//! right status and content type, server streams as envelopes ending in the end-of-stream
//! message. The wire format itself is `msb_envd`'s.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
pub use msb_envd::{Code, Codec, ConnectError, Message, Shape};

/// The header in which a client bounds a call's time (milliseconds).
const TIMEOUT_HEADER: &str = "connect-timeout-ms";

/// When a call must end, if its client said (`Connect-Timeout-Ms`).
pub fn deadline(headers: &HeaderMap) -> Option<tokio::time::Instant> {
    let ms = headers.get(TIMEOUT_HEADER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(tokio::time::Instant::now() + std::time::Duration::from_millis(ms))
}

/// The largest request message we accept (requests are small: paths and command lines).
pub const MAX_REQUEST: usize = 4 << 20;

/// A unary call's error: the code's status, a JSON body.
pub fn error_response(e: ConnectError) -> Response {
    let body = serde_json::to_vec(&e.json()).unwrap_or_default();
    (status_of(e.code), [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The HTTP status of `code`.
pub fn status_of(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn codec_of(headers: &HeaderMap, shape: Shape) -> Result<Codec, ConnectError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Codec::of(content_type, shape)
}

/// Decodes a unary request's body.
pub fn unary_request<T: Message>(headers: &HeaderMap, body: &[u8]) -> Result<(Codec, T), ConnectError> {
    reject_compression(headers, "content-encoding")?;
    let codec = codec_of(headers, Shape::Unary)?;
    Ok((codec, codec.decode(body)?))
}

/// Decodes a server-stream request: one enveloped message.
pub fn stream_request<T: Message>(headers: &HeaderMap, body: &[u8]) -> Result<(Codec, T), ConnectError> {
    reject_compression(headers, "connect-content-encoding")?;
    let codec = codec_of(headers, Shape::ServerStream)?;
    Ok((codec, codec.decode_enveloped(body)?))
}

fn reject_compression(headers: &HeaderMap, name: &str) -> Result<(), ConnectError> {
    match headers.get(name).and_then(|v| v.to_str().ok()) {
        None | Some("identity") => Ok(()),
        Some(other) => Err(ConnectError::new(
            Code::Unimplemented,
            format!("compression {other:?} is not supported; send uncompressed messages"),
        )),
    }
}

/// A unary call's answer.
pub fn unary_response<T: Message>(codec: Codec, result: Result<T, ConnectError>) -> Response {
    match result.and_then(|message| codec.encode(&message)) {
        Ok(bytes) => {
            let content_type = HeaderValue::from_static(codec.content_type(Shape::Unary));
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        Err(e) => error_response(e),
    }
}

/// A server stream's answer: each message enveloped, then the end-of-stream message (with
/// the error that ended the stream, if one did).
pub fn stream_response<T, S>(codec: Codec, messages: S) -> Response
where
    T: Message,
    S: Stream<Item = Result<T, ConnectError>> + Send + 'static,
{
    // Messages until the first error or the last message; then exactly one end-of-stream
    // envelope, and nothing more is read from `messages`.
    let frames = futures::stream::unfold(Some(Box::pin(messages)), move |messages| async move {
        let mut messages = messages?;
        let (frame, rest) = match messages.next().await {
            Some(Ok(message)) => match codec.encode(&message) {
                Ok(bytes) => (msb_envd::envelope(0, &bytes), Some(messages)),
                Err(e) => (msb_envd::end_of_stream(Some(&e)), None),
            },
            Some(Err(e)) => (msb_envd::end_of_stream(Some(&e)), None),
            None => (msb_envd::end_of_stream(None), None),
        };
        Some((Ok::<_, std::io::Error>(frame), rest))
    });
    let content_type = HeaderValue::from_static(codec.content_type(Shape::ServerStream));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(frames),
    )
        .into_response()
}

/// A stream that ends before its first message with `error`.
pub fn stream_error(codec: Codec, error: ConnectError) -> Response {
    let none = futures::stream::iter([Err::<msb_envd::process::StartResponse, _>(error)]);
    stream_response(codec, none)
}

/// Decodes a unary request, runs `op`, encodes its answer in the request's codec.
pub async fn unary<Req, Resp, F, Fut>(headers: &HeaderMap, body: &[u8], op: F) -> Response
where
    Req: Message,
    Resp: Message,
    F: FnOnce(Req) -> Fut,
    Fut: std::future::Future<Output = Result<Resp, ConnectError>>,
{
    match unary_request::<Req>(headers, body) {
        Ok((codec, request)) => unary_response(codec, op(request).await),
        Err(e) => error_response(e),
    }
}

/// The error for a feature outside what the endpoint offers.
pub fn unimplemented(feature: &str) -> ConnectError {
    ConnectError::new(
        Code::Unimplemented,
        format!("{feature}: not supported by microsandbox's E2B-compatible endpoint"),
    )
}
