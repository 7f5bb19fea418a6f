//! The Connect protocol (connectrpc.com/docs/protocol) as envd's clients speak it: unary
//! calls and server streams, each in the JSON or the binary protobuf codec.
//!
//! Written here rather than taken from a crate: Rust's Connect servers bring their own code
//! generators and runtimes; the part we need (four content types, the five-byte envelope,
//! the end-of-stream message, the error shape) is small.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest request message we accept (requests are small: paths and command lines).
pub const MAX_REQUEST: usize = 4 << 20;

/// Flag of an envelope that ends a stream.
const END_STREAM: u8 = 0b10;
/// Flag of a compressed envelope (we never negotiate compression).
const COMPRESSED: u8 = 0b01;

/// A Connect status code (`code` in an error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The caller went away.
    Canceled,
    /// A bad request: a malformed message, a bad path.
    InvalidArgument,
    /// What was named does not exist.
    NotFound,
    /// It exists already.
    AlreadyExists,
    /// Wrong or missing credentials.
    Unauthenticated,
    /// The operation cannot run in the current state.
    FailedPrecondition,
    /// Something we do not do.
    Unimplemented,
    /// Our fault.
    Internal,
    /// The sandbox cannot be reached.
    Unavailable,
    /// Permission denied inside the sandbox.
    PermissionDenied,
}

impl Code {
    fn name(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::InvalidArgument => "invalid_argument",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::Unauthenticated => "unauthenticated",
            Code::FailedPrecondition => "failed_precondition",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::PermissionDenied => "permission_denied",
        }
    }

    /// The HTTP status the protocol pairs with the code for unary calls.
    pub fn status(self) -> StatusCode {
        match self {
            Code::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::REQUEST_TIMEOUT),
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error as a Connect client receives it.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// What kind.
    pub code: Code,
    /// For people.
    pub message: String,
}

impl ConnectError {
    /// An error of `code`.
    pub fn new(code: Code, message: impl Into<String>) -> ConnectError {
        ConnectError {
            code,
            message: message.into(),
        }
    }

    /// The body both unary errors and end-of-stream messages carry.
    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code.name(), "message": self.message })
    }
}

impl IntoResponse for ConnectError {
    /// A unary call's error: the code's status, a JSON body.
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.json()).unwrap_or_default();
        (self.code.status(), [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// A message codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Proto3 JSON.
    Json,
    /// Binary protobuf.
    Proto,
}

/// The two shapes of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One request, one response: `application/{json,proto}`.
    Unary,
    /// One request, a stream of responses: `application/connect+{json,proto}`.
    ServerStream,
}

impl Codec {
    /// The codec a request's `Content-Type` names for a call of `shape`.
    pub fn of(headers: &HeaderMap, shape: Shape) -> Result<Codec, ConnectError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let codec = match shape {
            Shape::Unary => essence.strip_prefix("application/"),
            Shape::ServerStream => essence.strip_prefix("application/connect+"),
        };
        match codec {
            Some("json") => Ok(Codec::Json),
            Some("proto") => Ok(Codec::Proto),
            _ => Err(ConnectError::new(
                Code::InvalidArgument,
                format!("unsupported content type {content_type:?} for this method"),
            )),
        }
    }

    fn content_type(self, shape: Shape) -> &'static str {
        match (shape, self) {
            (Shape::Unary, Codec::Json) => "application/json",
            (Shape::Unary, Codec::Proto) => "application/proto",
            (Shape::ServerStream, Codec::Json) => "application/connect+json",
            (Shape::ServerStream, Codec::Proto) => "application/connect+proto",
        }
    }

    /// Decodes one message.
    pub fn decode<T: prost::Message + DeserializeOwned + Default>(self, bytes: &[u8]) -> Result<T, ConnectError> {
        let bad = |e: &dyn std::fmt::Display| {
            ConnectError::new(Code::InvalidArgument, format!("malformed request message: {e}"))
        };
        match self {
            // An empty JSON body is the empty message, as an empty proto body is.
            Codec::Json if bytes.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| bad(&e)),
            Codec::Proto => T::decode(bytes).map_err(|e| bad(&e)),
        }
    }

    /// Encodes one message.
    pub fn encode<T: prost::Message + Serialize>(self, message: &T) -> Bytes {
        match self {
            // pbjson's serializers cannot fail on generated types.
            Codec::Json => Bytes::from(serde_json::to_vec(message).unwrap_or_default()),
            Codec::Proto => Bytes::from(message.encode_to_vec()),
        }
    }
}

/// Decodes a unary request's body.
pub fn unary_request<T>(headers: &HeaderMap, body: &[u8]) -> Result<(Codec, T), ConnectError>
where
    T: prost::Message + DeserializeOwned + Default,
{
    reject_compression(headers, "content-encoding")?;
    let codec = Codec::of(headers, Shape::Unary)?;
    Ok((codec, codec.decode(body)?))
}

/// Decodes a server-stream request: one enveloped message.
pub fn stream_request<T>(headers: &HeaderMap, body: &[u8]) -> Result<(Codec, T), ConnectError>
where
    T: prost::Message + DeserializeOwned + Default,
{
    reject_compression(headers, "connect-content-encoding")?;
    let codec = Codec::of(headers, Shape::ServerStream)?;
    let (flags, message) = open_envelope(body)?;
    if flags & COMPRESSED != 0 {
        return Err(ConnectError::new(
            Code::InvalidArgument,
            "compressed messages are not supported",
        ));
    }
    Ok((codec, codec.decode(message)?))
}

/// The one envelope a server-stream request body holds: its flags and message.
fn open_envelope(body: &[u8]) -> Result<(u8, &[u8]), ConnectError> {
    let truncated = || ConnectError::new(Code::InvalidArgument, "truncated request envelope");
    let (head, rest) = body.split_at_checked(5).ok_or_else(truncated)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if rest.len() != len {
        return Err(ConnectError::new(
            Code::InvalidArgument,
            format!("request envelope says {len} bytes, body holds {}", rest.len()),
        ));
    }
    Ok((head[0], rest))
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
pub fn unary_response<T: prost::Message + Serialize>(codec: Codec, result: Result<T, ConnectError>) -> Response {
    match result {
        Ok(message) => {
            let content_type = HeaderValue::from_static(codec.content_type(Shape::Unary));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                codec.encode(&message),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// A server stream's answer: each message enveloped, then the end-of-stream message (with
/// the error that ended the stream, if one did).
pub fn stream_response<T, S>(codec: Codec, messages: S) -> Response
where
    T: prost::Message + Serialize + Send + 'static,
    S: Stream<Item = Result<T, ConnectError>> + Send + 'static,
{
    let frames = async_stream_frames(codec, messages);
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
    stream_response::<crate::e2b::proto::process::StartResponse, _>(codec, futures::stream::iter([Err(error)]))
}

fn async_stream_frames<T, S>(codec: Codec, messages: S) -> impl Stream<Item = Result<Bytes, std::io::Error>>
where
    T: prost::Message + Serialize + Send + 'static,
    S: Stream<Item = Result<T, ConnectError>> + Send + 'static,
{
    // Messages until the first error; then exactly one end-of-stream envelope.
    let mut ended = false;
    let body = messages
        .map(Some)
        .chain(futures::stream::iter([None]))
        .filter_map(move |item| {
            let frame = match (ended, item) {
                (true, _) => None,
                (false, Some(Ok(message))) => Some(envelope(0, &codec.encode(&message))),
                (false, Some(Err(e))) => {
                    ended = true;
                    Some(end_of_stream(Some(&e)))
                }
                (false, None) => {
                    ended = true;
                    Some(end_of_stream(None))
                }
            };
            futures::future::ready(frame.map(Ok))
        });
    Box::pin(body)
}

fn end_of_stream(error: Option<&ConnectError>) -> Bytes {
    let body = match error {
        Some(e) => serde_json::json!({ "error": e.json() }),
        None => serde_json::json!({}),
    };
    envelope(END_STREAM, &serde_json::to_vec(&body).unwrap_or_default())
}

fn envelope(flags: u8, message: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(flags);
    // Our messages are far below 4 GiB: a data chunk is at most a pipe's read.
    frame.put_u32(message.len() as u32);
    frame.put_slice(message);
    frame.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_and_bad_ones_are_refused() {
        let frame = envelope(0, b"{}");
        assert_eq!(open_envelope(&frame).unwrap(), (0, &b"{}"[..]));
        assert_eq!(open_envelope(&frame[..4]).unwrap_err().code, Code::InvalidArgument);
        let mut long = frame.to_vec();
        long.push(b' ');
        assert_eq!(open_envelope(&long).unwrap_err().code, Code::InvalidArgument);
    }

    #[test]
    fn the_content_type_picks_the_codec() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/connect+proto"),
        );
        assert_eq!(Codec::of(&headers, Shape::ServerStream).unwrap(), Codec::Proto);
        assert!(Codec::of(&headers, Shape::Unary).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(Codec::of(&headers, Shape::Unary).unwrap(), Codec::Json);
    }
}
