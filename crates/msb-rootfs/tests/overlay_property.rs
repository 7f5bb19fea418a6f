//! Property: for random image layers (with whiteouts and opaque directories) and random
//! patch sequences, the upper tree the engine makes, read back through overlay rules,
//! shows exactly what the same patches give when written into a plain directory holding
//! the image's merged contents — or both fail with the same error and nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use msb_ext4::{Dir, Node};
use msb_rootfs::{apply_to_host_dir, build_upper};
use msb_types::Patch;
use proptest::prelude::*;
use std::path::Path;

const NAMES: [&str; 3] = ["a", "b", "c"];

/// One entry to place in a layer: a path of 1-3 names and what to put there.
#[derive(Debug, Clone)]
enum Put {
    File(u8),
    Dir(bool),
    Symlink,
    Whiteout,
}

fn path_strategy() -> impl Strategy<Value = Vec<usize>> + Clone {
    prop::collection::vec(0..NAMES.len(), 1..=3)
}

fn put_strategy(top: bool) -> impl Strategy<Value = (Vec<usize>, Put)> {
    let kinds = if top {
        prop_oneof![
            (0u8..3).prop_map(Put::File),
            any::<bool>().prop_map(Put::Dir),
            Just(Put::Symlink),
            Just(Put::Whiteout)
        ]
        .boxed()
    } else {
        prop_oneof![(0u8..3).prop_map(Put::File), Just(Put::Dir(false)), Just(Put::Symlink)].boxed()
    };
    (path_strategy(), kinds)
}

/// Builds a layer from placements, skipping those whose parent is not a directory.
fn layer(puts: &[(Vec<usize>, Put)]) -> Dir {
    let mut root = Dir::new(meta(0o755));
    for (path, put) in puts {
        let names: Vec<&[u8]> = path.iter().map(|i| NAMES[*i].as_bytes()).collect();
        let mut ok = true;
        for depth in 1..names.len() {
            match root.get(&names[..depth]) {
                Some(Node::Dir(_)) => {}
                Some(_) => ok = false,
                None => {
                    let _ = root.insert(&names[..depth], dir(vec![]));
                }
            }
        }
        if !ok {
            continue;
        }
        let node = match put {
            Put::File(n) => file(&format!("content{n}"), [0o644, 0o600, 0o755][*n as usize]),
            Put::Dir(opaque) if *opaque => opaque_dir(vec![]),
            Put::Dir(_) => Node::Dir(dir_of(0o750, vec![])),
            Put::Symlink => symlink("target"),
            Put::Whiteout => Node::whiteout(),
        };
        // Keep a directory already there (with its children) unless replacing a non-dir.
        if matches!((root.get(&names), &node), (Some(Node::Dir(_)), Node::Dir(_))) {
            continue;
        }
        let _ = root.insert(&names, node);
    }
    root
}

fn patch_strategy() -> impl Strategy<Value = Patch> {
    let path = path_strategy()
        .prop_map(|p| p.iter().map(|i| format!("/{}", NAMES[*i])).collect::<String>())
        .boxed();
    let mode = prop_oneof![Just(None), Just(Some(0o600u32)), Just(Some(0o755u32))];
    // Mostly replacing: a conflict ends the sequence, and longer ones reach more states.
    let replace = || prop::bool::weighted(0.8);
    prop_oneof![
        3 => (path.clone(), 0u8..3, mode.clone(), replace()).prop_map(|(p, n, mode, replace)| Patch::Text {
            path: p,
            content: format!("text{n}"),
            mode,
            replace
        }),
        2 => (path.clone(), mode).prop_map(|(p, mode)| Patch::Mkdir { path: p, mode }),
        2 => path.clone().prop_map(Patch::remove),
        1 => path.clone().prop_map(|p| Patch::append(p, "+")),
        1 => (path.clone(), replace()).prop_map(|(p, r)| {
            let s = Patch::symlink("t", p);
            if r { s.replacing() } else { s }
        }),
        1 => (path.clone(), replace()).prop_map(|(p, r)| {
            let c = Patch::copy_dir(host_dir(), p);
            if r { c.replacing() } else { c }
        }),
    ]
}

/// A small host directory for CopyDir patches, made once.
fn host_dir() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("b")).unwrap();
        std::fs::write(d.path().join("a"), "host a").unwrap();
        std::fs::write(d.path().join("b/c"), "host c").unwrap();
        d
    })
    .path()
    .to_path_buf()
}

fn on_image(layers: &[Dir], patches: &[Patch]) -> Result<Vec<String>, String> {
    let upper = build_upper(patches, &mut stack(layers), 1_000).map_err(|e| e.to_string())?;
    Ok(render(&merge(layers, &upper)))
}

fn on_host_dir(at: &Path, layers: &[Dir], patches: &[Patch]) -> Result<Vec<String>, String> {
    materialise(at, &merge(layers, &Dir::new(meta(0o755))));
    let before = render(&read_back(at));
    match apply_to_host_dir(at, patches, 1_000) {
        Ok(()) => Ok(render(&read_back(at))),
        Err(e) => {
            assert_eq!(render(&read_back(at)), before, "a failed patch set wrote nothing");
            Err(e.to_string())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn image_view_equals_patched_directory(
        bottom in prop::collection::vec(put_strategy(false), 0..8),
        top in prop::collection::vec(put_strategy(true), 0..8),
        patches in prop::collection::vec(patch_strategy(), 1..8),
    ) {
        let layers = vec![layer(&bottom), layer(&top)];
        let tmp = tempfile::tempdir().unwrap();
        let image = on_image(&layers, &patches);
        let bind = on_host_dir(tmp.path(), &layers, &patches);
        match (image, bind) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => {
                let a = a.replace("path exists in image layer", "path already exists in rootfs").replace("in lower layer ", "");
                prop_assert_eq!(a, b);
            }
            (a, b) => prop_assert!(false, "image gave {:?}, host dir gave {:?}", a, b),
        }
    }
}
