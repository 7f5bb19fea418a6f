#![no_main]
//! Arbitrary text through every parser of a user's arguments (mounts, limits, signals,
//! sizes, environment, names, platforms, detach keys, guest paths) and of the guest's own
//! `/etc/passwd` and `/etc/group` (read to resolve `--user`, so written by whoever controls
//! the image). Nothing panics, and what is accepted keeps the promises the host relies on:
//! mounts land on checked guest paths, names and path components cannot climb.

use libfuzzer_sys::fuzz_target;
use msb_types::{
    check_guest_path, guest_path_components, parse_env, parse_signal, parse_size_mib, resolve_user, validate_name,
    DetachKeys, Field, Mount, Platform, Rlimit,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [
        Mount::parse_volume(text),
        Mount::parse_disk(text),
        Mount::parse_tmpfs(text),
    ] {
        if let Ok(mount) = parsed {
            assert!(check_guest_path(mount.guest()).is_ok(), "{mount:?}");
        }
    }
    let _ = text.parse::<Rlimit>();
    let _ = text.parse::<DetachKeys>();
    let _ = text.parse::<Platform>();
    let _ = parse_signal(text, Field::StopSignal);
    let _ = parse_size_mib(text);
    if let Ok((key, _)) = parse_env(text, |_| None) {
        assert!(!key.is_empty() && !key.contains('='), "{key:?}");
    }
    if validate_name(text).is_ok() {
        assert!(
            !text.is_empty() && !text.contains('/') && text != "." && text != "..",
            "{text:?}"
        );
    }
    if let Ok(parts) = guest_path_components(text) {
        assert!(!parts.iter().any(|p| *p == ".." || p.is_empty()), "{parts:?}");
    }
    // `--user SPEC` against a guest's passwd and group files: the input split in three.
    let mut pieces = text.splitn(3, '\u{1}');
    let (spec, passwd, group) = (
        pieces.next().unwrap_or_default(),
        pieces.next().unwrap_or_default(),
        pieces.next().unwrap_or_default(),
    );
    let _ = resolve_user(spec, passwd, group);
});
