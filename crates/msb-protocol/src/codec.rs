//! Framing: `len: u32 BE` (bytes after the length) · `session id: u32 BE` · postcard message.
//!
//! The decoder never trusts the peer: lengths are bounded by [`MAX_FRAME_LEN`] before any
//! allocation, and malformed payloads are errors, not panics.

use crate::{Message, MAX_FRAME_LEN};
use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// A decoded frame: which session it belongs to and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Session id (0 = control session).
    pub id: u32,
    /// The message.
    pub msg: Message,
}

impl Frame {
    /// A frame for session `id`.
    pub fn new(id: u32, msg: Message) -> Self {
        Frame { id, msg }
    }
}

/// Errors of the wire protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The peer announced a frame larger than allowed.
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    FrameTooLarge(usize),
    /// A frame was too short to hold a session id.
    #[error("frame of {0} bytes is too short")]
    FrameTooShort(usize),
    /// The payload was not a valid message.
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
    /// The connection ended in the middle of a frame.
    #[error("connection closed mid-frame ({0} bytes pending)")]
    Truncated(usize),
    /// Reading or writing the connection failed.
    #[error("agent channel i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtocolError {
    /// Whether the peer sent something no honest peer sends (as opposed to the connection
    /// failing or ending, which a peer going away mid-frame also causes).
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            ProtocolError::FrameTooLarge(_) | ProtocolError::FrameTooShort(_) | ProtocolError::Malformed(_)
        )
    }
}

/// Length-prefixed frame codec for tokio's `Framed`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec;

const LEN_BYTES: usize = 4;
const ID_BYTES: usize = 4;

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if src.len() < LEN_BYTES {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(ProtocolError::FrameTooLarge(len));
        }
        if len < ID_BYTES {
            return Err(ProtocolError::FrameTooShort(len));
        }
        if src.len() < LEN_BYTES + len {
            src.reserve(LEN_BYTES + len - src.len());
            return Ok(None);
        }
        src.advance(LEN_BYTES);
        let body = src.split_to(len);
        let id = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let msg = postcard::from_bytes(&body[ID_BYTES..])?;
        Ok(Some(Frame { id, msg }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(ProtocolError::Truncated(src.len())),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let payload = postcard::to_allocvec(&frame.msg)?;
        let len = ID_BYTES + payload.len();
        if len > MAX_FRAME_LEN {
            return Err(ProtocolError::FrameTooLarge(len));
        }
        dst.reserve(LEN_BYTES + len);
        // len <= MAX_FRAME_LEN, so it fits in u32.
        dst.put_u32(len as u32);
        dst.put_u32(frame.id);
        dst.extend_from_slice(&payload);
        Ok(())
    }
}

/// The size a frame carrying `msg` would have on the wire (length prefix excluded), to
/// check it against [`MAX_FRAME_LEN`] before sending.
pub fn frame_len(msg: &Message) -> Result<usize, ProtocolError> {
    Ok(ID_BYTES + postcard::experimental::serialized_size(msg)?)
}

/// Encodes one frame into a fresh buffer (for tests and simple writers).
pub fn encode_frame(frame: Frame) -> Result<Vec<u8>, ProtocolError> {
    let mut buf = BytesMut::new();
    FrameCodec.encode(frame, &mut buf)?;
    Ok(buf.to_vec())
}

/// Decodes every complete frame in `bytes`; stops at the first error. Used by the fuzz target.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = FrameCodec.decode_eof(&mut buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExecRequest, ExitStatus, StreamKind, WindowSize};

    fn roundtrip(msg: Message) {
        let bytes = encode_frame(Frame::new(7, msg.clone())).unwrap();
        let frames = decode_all(&bytes).unwrap();
        assert_eq!(frames, vec![Frame::new(7, msg)]);
    }

    #[test]
    fn every_message_kind_roundtrips() {
        roundtrip(Message::Exec(ExecRequest {
            argv: vec!["sh".into(), "-c".into(), "echo ü".into()],
            env: vec![("A".into(), "1".into())],
            workdir: Some("/tmp".into()),
            user: Some("1000:1000".into()),
            tty: Some(WindowSize { rows: 24, cols: 80 }),
            stdin: crate::StdinMode::Pipe,
            rlimits: vec![msb_types::Rlimit::new(msb_types::RlimitResource::Nofile, 64)],
        }));
        roundtrip(Message::Stdout(vec![0, 255, 10]));
        roundtrip(Message::Stdin(Vec::new()));
        roundtrip(Message::Credit {
            stream: StreamKind::Stderr,
            bytes: 4096,
        });
        roundtrip(Message::Exited(ExitStatus::Signal(9)));
        roundtrip(Message::Shutdown(crate::ShutdownRequest {
            signal: 15,
            grace_ms: 10_000,
        }));
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let bytes = encode_frame(Frame::new(1, Message::Stdout(vec![1; 100]))).unwrap();
        let mut buf = BytesMut::new();
        for (i, b) in bytes.iter().enumerate() {
            buf.put_u8(*b);
            let got = FrameCodec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == bytes.len() - 1);
        }
    }

    #[test]
    fn oversized_length_is_rejected_before_allocating() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0, 0][..]);
        assert!(matches!(
            FrameCodec.decode(&mut buf),
            Err(ProtocolError::FrameTooLarge(_))
        ));
    }

    #[test]
    fn short_and_garbage_frames_are_errors() {
        assert!(matches!(
            decode_all(&[0, 0, 0, 2, 1, 1]),
            Err(ProtocolError::FrameTooShort(2))
        ));
        assert!(matches!(
            decode_all(&[0, 0, 0, 5, 0, 0, 0, 1, 200]),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(decode_all(&[0, 0, 0, 9, 0]), Err(ProtocolError::Truncated(5))));
    }

    #[test]
    fn back_to_back_frames_decode_in_order() {
        let mut bytes = encode_frame(Frame::new(1, Message::StdinEof)).unwrap();
        bytes.extend(encode_frame(Frame::new(2, Message::Signal(15))).unwrap());
        let frames = decode_all(&bytes).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1], Frame::new(2, Message::Signal(15)));
    }
}
