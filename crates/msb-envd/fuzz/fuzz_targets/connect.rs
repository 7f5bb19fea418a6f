#![no_main]
//! Arbitrary bytes as an envd request, as the E2B endpoint reads one: any message type,
//! either codec, bare (unary) or enveloped (a server stream's request). Nothing panics, and
//! whatever decodes encodes to the same message again, in binary always, and in JSON
//! whenever it has a JSON form (an enum value its type does not name has none).

use libfuzzer_sys::fuzz_target;
use msb_envd::filesystem::{ListDirRequest, MakeDirRequest, MoveRequest, StatRequest};
use msb_envd::process::{ConnectRequest, SendInputRequest, SendSignalRequest, StartRequest};
use msb_envd::{Codec, Message};
use std::fmt::Debug;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let codec = if selector & 1 == 0 { Codec::Json } else { Codec::Proto };
    let enveloped = selector & 2 != 0;
    match (selector >> 2) % 8 {
        0 => check::<StartRequest>(codec, body, enveloped),
        1 => check::<ConnectRequest>(codec, body, enveloped),
        2 => check::<SendSignalRequest>(codec, body, enveloped),
        3 => check::<SendInputRequest>(codec, body, enveloped),
        4 => check::<StatRequest>(codec, body, enveloped),
        5 => check::<ListDirRequest>(codec, body, enveloped),
        6 => check::<MakeDirRequest>(codec, body, enveloped),
        _ => check::<MoveRequest>(codec, body, enveloped),
    }
});

fn check<T: Message + PartialEq + Debug>(codec: Codec, body: &[u8], enveloped: bool) {
    let decoded = if enveloped {
        codec.decode_enveloped::<T>(body)
    } else {
        codec.decode::<T>(body)
    };
    let Ok(message) = decoded else {
        return;
    };
    for other in [Codec::Json, Codec::Proto] {
        let bytes = match (other, other.encode(&message)) {
            (_, Ok(bytes)) => bytes,
            (Codec::Json, Err(_)) => continue,
            (Codec::Proto, Err(e)) => panic!("{message:?} has no binary form: {e:?}"),
        };
        let again = other
            .decode::<T>(&bytes)
            .unwrap_or_else(|e| panic!("{message:?} does not survive {other:?}: {e:?}"));
        assert_eq!(again, message, "{other:?} changed the message");
    }
}
