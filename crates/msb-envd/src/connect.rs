//! The Connect protocol (connectrpc.com/docs/protocol) as envd's clients speak it: unary
//! calls and server streams, each in the JSON or the binary protobuf codec.
//!
//! Written here rather than taken from a crate: Rust's Connect servers bring their own code
//! generators and runtimes; the part we need (four content types, the five-byte envelope,
//! the end-of-stream message, the error shape) is small.

use crate::Message;
use bytes::{BufMut, Bytes, BytesMut};

/// Flag of an envelope that ends a stream.
pub const END_STREAM: u8 = 0b10;
/// Flag of a compressed envelope (we never negotiate compression).
pub const COMPRESSED: u8 = 0b01;

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
    /// The call's time ran out.
    DeadlineExceeded,
    /// Permission denied inside the sandbox.
    PermissionDenied,
}

impl Code {
    /// The code's name on the wire.
    pub fn name(self) -> &'static str {
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
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::PermissionDenied => "permission_denied",
        }
    }

    /// The HTTP status the protocol pairs with the code for unary calls.
    pub fn http_status(self) -> u16 {
        match self {
            Code::Canceled => 499,
            Code::InvalidArgument | Code::FailedPrecondition => 400,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::Unimplemented => 501,
            Code::Internal => 500,
            Code::Unavailable => 503,
            Code::DeadlineExceeded => 504,
        }
    }
}

/// An error as a Connect client receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// The body of a unary error, and the `error` of an end-of-stream message.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code.name(), "message": self.message })
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
    pub fn of(content_type: &str, shape: Shape) -> Result<Codec, ConnectError> {
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

    /// The `Content-Type` of answers in this codec.
    pub fn content_type(self, shape: Shape) -> &'static str {
        match (shape, self) {
            (Shape::Unary, Codec::Json) => "application/json",
            (Shape::Unary, Codec::Proto) => "application/proto",
            (Shape::ServerStream, Codec::Json) => "application/connect+json",
            (Shape::ServerStream, Codec::Proto) => "application/connect+proto",
        }
    }

    /// Decodes one message.
    pub fn decode<T: Message>(self, bytes: &[u8]) -> Result<T, ConnectError> {
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

    /// Encodes one message. Only JSON can fail: an enum field holding a value its type
    /// does not name has no JSON form.
    pub fn encode<T: Message>(self, message: &T) -> Result<Bytes, ConnectError> {
        match self {
            Codec::Json => serde_json::to_vec(message)
                .map(Bytes::from)
                .map_err(|e| ConnectError::new(Code::Internal, format!("encoding the answer: {e}"))),
            Codec::Proto => Ok(Bytes::from(message.encode_to_vec())),
        }
    }

    /// Decodes a server-stream request body: exactly one uncompressed envelope.
    pub fn decode_enveloped<T: Message>(self, body: &[u8]) -> Result<T, ConnectError> {
        let (flags, message) = open_envelope(body)?;
        if flags & COMPRESSED != 0 {
            return Err(ConnectError::new(
                Code::InvalidArgument,
                "compressed messages are not supported",
            ));
        }
        self.decode(message)
    }
}

/// The one envelope a body holds: its flags and message.
pub fn open_envelope(body: &[u8]) -> Result<(u8, &[u8]), ConnectError> {
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

/// A stream's end: an envelope of the end-of-stream message, with the error that ended
/// the stream if one did.
pub fn end_of_stream(error: Option<&ConnectError>) -> Bytes {
    let body = match error {
        Some(e) => serde_json::json!({ "error": e.json() }),
        None => serde_json::json!({}),
    };
    envelope(END_STREAM, &serde_json::to_vec(&body).unwrap_or_default())
}

/// `message` in an envelope with `flags`.
pub fn envelope(flags: u8, message: &[u8]) -> Bytes {
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
    use crate::process::{ProcessConfig, StartRequest};

    #[test]
    fn an_envelope_round_trips_and_bad_ones_are_refused() {
        let frame = envelope(0, b"{}");
        assert_eq!(open_envelope(&frame).unwrap(), (0, &b"{}"[..]));
        assert_eq!(open_envelope(&frame[..4]).unwrap_err().code, Code::InvalidArgument);
        let mut long = frame.to_vec();
        long.push(b' ');
        assert_eq!(open_envelope(&long).unwrap_err().code, Code::InvalidArgument);
        let compressed = envelope(COMPRESSED, b"{}");
        assert!(Codec::Json.decode_enveloped::<StartRequest>(&compressed).is_err());
    }

    #[test]
    fn the_content_type_picks_the_codec() {
        assert_eq!(
            Codec::of("application/connect+proto", Shape::ServerStream).unwrap(),
            Codec::Proto
        );
        assert!(Codec::of("application/connect+proto", Shape::Unary).is_err());
        assert_eq!(
            Codec::of("application/json; charset=utf-8", Shape::Unary).unwrap(),
            Codec::Json
        );
        assert!(Codec::of("text/plain", Shape::Unary).is_err());
    }

    #[test]
    fn both_codecs_carry_the_same_message_in_the_json_mapping_clients_expect() {
        let request = StartRequest {
            process: Some(ProcessConfig {
                cmd: "/bin/bash".into(),
                args: vec!["-l".into(), "-c".into(), "echo hi".into()],
                envs: [("A".to_string(), "1".to_string())].into(),
                cwd: Some("/tmp".into()),
            }),
            stdin: Some(false),
            ..Default::default()
        };
        for codec in [Codec::Json, Codec::Proto] {
            let bytes = codec.encode(&request).unwrap();
            assert_eq!(codec.decode::<StartRequest>(&bytes).unwrap(), request);
        }
        let json: serde_json::Value = serde_json::from_slice(&Codec::Json.encode(&request).unwrap()).unwrap();
        assert_eq!(json["process"]["args"][2], "echo hi");
        assert_eq!(json["process"]["envs"]["A"], "1");
        assert_eq!(json["stdin"], false);
    }
}
