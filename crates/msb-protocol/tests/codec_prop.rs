//! Property tests of the frame codec: every message survives a round trip whatever its
//! fields hold, frames decode the same however the bytes are split, and hostile bytes give
//! frames or an error, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod arb;

use bytes::BytesMut;
use msb_protocol::codec::{decode_all, encode_frame, frame_len};
use msb_protocol::{Frame, FrameCodec, Message};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Debug;
use tokio_util::codec::Decoder;

/// How many variants the enum `T` has on the wire: the variant indexes postcard accepts,
/// found by decoding `[index, 0, 0, …]` (zeros decode as empty or zero fields).
fn wire_variants<T: DeserializeOwned>() -> u8 {
    let decodes = |i: u8| postcard::from_bytes::<T>(&[&[i][..], &[0; 64]].concat()).is_ok();
    let n = (0..127).take_while(|&i| decodes(i)).count() as u8;
    assert!(n > 0, "no variant decodes: the probe is broken");
    assert!((n..127).all(|i| !decodes(i)), "variant indexes are not contiguous");
    n
}

/// The wire variant indexes `strategy` produced in `samples` draws (one byte: every enum
/// here has fewer than 128 variants, so postcard's varint index is the first byte).
fn variants_drawn<T: Serialize + Debug>(strategy: impl Strategy<Value = T>, samples: usize) -> BTreeSet<u8> {
    let mut runner = TestRunner::deterministic();
    (0..samples)
        .map(|_| {
            let value = strategy.new_tree(&mut runner).unwrap().current();
            postcard::to_allocvec(&value).unwrap()[0]
        })
        .collect()
}

fn assert_covers<T: Serialize + DeserializeOwned + Debug>(strategy: impl Strategy<Value = T>) {
    let all: BTreeSet<u8> = (0..wire_variants::<T>()).collect();
    assert_eq!(
        variants_drawn(strategy, 3000),
        all,
        "the strategy for {} misses variants",
        std::any::type_name::<T>()
    );
}

#[test]
fn the_strategy_covers_every_wire_variant() {
    assert_covers(arb::message());
    // The exhaustive match names each variant once, in wire order.
    let mut runner = TestRunner::deterministic();
    let mut names = std::collections::BTreeMap::new();
    for _ in 0..3000 {
        let msg = arb::message().new_tree(&mut runner).unwrap().current();
        names.insert(postcard::to_allocvec(&msg).unwrap()[0], arb::variant(&msg).0);
    }
    let distinct: BTreeSet<_> = names.values().collect();
    assert_eq!(distinct.len(), usize::from(wire_variants::<Message>()));
}

#[test]
fn nested_enum_strategies_cover_every_variant() {
    assert_covers(arb::root_source());
    assert_covers(arb::stream_kind());
    assert_covers(arb::exit_status());
    assert_covers(arb::spawn_error_kind());
    assert_covers(arb::control());
    assert_covers(arb::fs_op());
    assert_covers(arb::fs_reply());
    assert_covers(arb::fs_kind());
    assert_covers(arb::fs_error_kind());
}

/// Bytes a hostile peer might send: noise, plausible length prefixes over noise, and real
/// frames with bytes changed and the tail cut off.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let noise = vec(any::<u8>(), 0..96);
    let short_prefix =
        (0u32..80, vec(any::<u8>(), 0..96)).prop_map(|(len, body)| [&len.to_be_bytes()[..], &body].concat());
    let corrupted = (
        any::<u32>(),
        arb::message(),
        vec((any::<Index>(), any::<u8>()), 0..4),
        any::<Index>(),
    )
        .prop_map(|(id, msg, edits, cut)| {
            let mut bytes = encode_frame(Frame::new(id, msg)).unwrap();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            bytes
        });
    prop_oneof![noise, short_prefix, corrupted]
}

/// Feeds `bytes` to the decoder in the given pieces, as a socket would deliver them.
fn decode_in_pieces(bytes: &[u8], cuts: &[Index]) -> Result<Vec<Frame>, msb_protocol::ProtocolError> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let (mut buf, mut frames, mut from) = (BytesMut::new(), Vec::new(), 0);
    for to in points {
        buf.extend_from_slice(&bytes[from..to]);
        from = to;
        while let Some(frame) = FrameCodec.decode(&mut buf)? {
            frames.push(frame);
        }
    }
    if let Some(frame) = FrameCodec.decode_eof(&mut buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

proptest! {
    #[test]
    fn every_message_roundtrips_through_a_frame(id in any::<u32>(), msg in arb::message()) {
        let bytes = encode_frame(Frame::new(id, msg.clone())).unwrap();
        // frame_len is what exec checks against the limit before sending: it must be exact.
        prop_assert_eq!(frame_len(&msg).unwrap(), bytes.len() - 4);
        prop_assert_eq!(decode_all(&bytes).unwrap(), vec![Frame::new(id, msg)]);
    }

    #[test]
    fn ends_session_says_what_the_table_says(msg in arb::message()) {
        prop_assert_eq!(msg.ends_session(), arb::variant(&msg).1, "{:?}", msg);
    }

    #[test]
    fn frames_decode_the_same_however_the_bytes_are_split(
        frames in vec((any::<u32>(), arb::message()), 1..6),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let frames: Vec<Frame> = frames.into_iter().map(|(id, msg)| Frame::new(id, msg)).collect();
        let bytes: Vec<u8> = frames.iter().flat_map(|f| encode_frame(f.clone()).unwrap()).collect();
        prop_assert_eq!(&decode_all(&bytes).unwrap(), &frames);
        prop_assert_eq!(&decode_in_pieces(&bytes, &cuts).unwrap(), &frames);
    }

    #[test]
    fn hostile_bytes_decode_or_fail_without_panicking(
        bytes in hostile_bytes(),
        cuts in vec(any::<Index>(), 0..4),
    ) {
        if let Ok(frames) = decode_all(&bytes) {
            for frame in frames {
                let again = encode_frame(frame.clone()).unwrap();
                prop_assert_eq!(decode_all(&again).unwrap(), vec![frame]);
            }
        }
        let _ = decode_in_pieces(&bytes, &cuts);
    }
}
