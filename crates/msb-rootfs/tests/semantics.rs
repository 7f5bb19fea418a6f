//! Every patch variant against every kind of entry already at its path (nothing, a file, a
//! directory, a symlink, a path an earlier patch removed), with and without `replace`, on
//! both kinds of root: an image (patches become an upper over its layers, checked through
//! overlay rules) and a host directory (patches written into it). Both must show the same
//! result, and that result must be the one the reference's rules give.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use msb_ext4::{Dir, Node};
use msb_rootfs::{apply_to_host_dir, build_upper};
use msb_types::Patch;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lower {
    Absent,
    File,
    Dir,
    Symlink,
    RemovedEarlier,
}

const LOWERS: [Lower; 5] = [
    Lower::Absent,
    Lower::File,
    Lower::Dir,
    Lower::Symlink,
    Lower::RemovedEarlier,
];

/// Two image layers: the bottom one makes `/x` (0750, owned 7:7), the top one puts the
/// entry under test at `/x/target`.
fn layers(kind: Lower) -> Vec<Dir> {
    let mut x = dir_of(0o750, vec![("keep", file("keep", 0o644))]);
    x.meta.uid = 7;
    x.meta.gid = 7;
    let bottom = dir_of(0o755, vec![("x", Node::Dir(x))]);
    let target = match kind {
        Lower::Absent => None,
        Lower::File | Lower::RemovedEarlier => {
            let mut f = file("old", 0o640);
            if let Node::File(f) = &mut f {
                f.meta.uid = 5;
                f.meta.gid = 6;
            }
            Some(f)
        }
        Lower::Dir => Some(dir(vec![("inner", file("in", 0o644))])),
        Lower::Symlink => Some(symlink("/etc/passwd")),
    };
    let mut top_x = dir_of(0o750, vec![]);
    top_x.meta.uid = 7;
    top_x.meta.gid = 7;
    if let Some(t) = target {
        top_x.entries.insert(b"target".to_vec(), t);
    }
    vec![bottom, dir_of(0o755, vec![("x", Node::Dir(top_x))])]
}

/// The patches of one variant at `/x/target`, preceded by a Remove for `RemovedEarlier`.
fn patches(variant: &str, kind: Lower, replace: bool, host: &Path) -> Vec<Patch> {
    let t = "/x/target";
    let p = match variant {
        "text" => Patch::text(t, "new"),
        "file" => Patch::File {
            path: t.into(),
            content: b"bin\x00ary".to_vec(),
            mode: Some(0o600),
            replace: false,
        },
        "copy_file" => Patch::copy_file(host.join("src.txt"), t),
        "copy_dir" => Patch::copy_dir(host.join("srcdir"), t),
        "symlink" => Patch::symlink("/dest", t),
        "mkdir" => Patch::mkdir(t).with_mode(0o711),
        "remove" => Patch::remove(t),
        "append" => Patch::append(t, "+more"),
        other => panic!("{other}"),
    };
    let p = if replace { p.replacing() } else { p };
    let mut all = Vec::new();
    if kind == Lower::RemovedEarlier {
        all.push(Patch::remove(t));
    }
    all.push(p);
    all
}

fn host_sources(at: &Path) {
    std::fs::write(at.join("src.txt"), "copied").unwrap();
    std::fs::set_permissions(at.join("src.txt"), std::os::unix::fs::PermissionsExt::from_mode(0o604)).unwrap();
    std::fs::create_dir_all(at.join("srcdir/sub")).unwrap();
    std::fs::write(at.join("srcdir/a"), "A").unwrap();
    std::fs::write(at.join("srcdir/sub/b"), "B").unwrap();
    std::os::unix::fs::symlink("a", at.join("srcdir/ln")).unwrap();
    for (p, mode) in [
        ("srcdir", 0o755),
        ("srcdir/sub", 0o755),
        ("srcdir/a", 0o644),
        ("srcdir/sub/b", 0o644),
    ] {
        std::fs::set_permissions(at.join(p), std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
}

/// The rendered view below `/x`, or the error message.
fn on_image(layers: &[Dir], patches: &[Patch]) -> Result<Vec<String>, String> {
    let upper = build_upper(patches, &mut stack(layers), 1_000).map_err(|e| e.to_string())?;
    Ok(render(&merge(layers, &upper)))
}

fn on_host_dir(layers: &[Dir], patches: &[Patch]) -> Result<Vec<String>, String> {
    let tmp = tempfile::tempdir().unwrap();
    materialise(tmp.path(), &merge(layers, &Dir::new(meta(0o755))));
    let before = render(&read_back(tmp.path()));
    match apply_to_host_dir(tmp.path(), patches, 1_000) {
        Ok(()) => Ok(render(&read_back(tmp.path()))),
        Err(e) => {
            assert_eq!(
                render(&read_back(tmp.path())),
                before,
                "a failed patch set wrote nothing"
            );
            Err(e.to_string())
        }
    }
}

/// What the reference's rules give: the lines under `/x/target`, or an error fragment.
fn expected(variant: &str, kind: Lower, replace: bool) -> Result<Vec<&'static str>, &'static str> {
    use Lower::*;
    let exists = matches!(kind, File | Dir | Symlink);
    let made = |lines: Vec<&'static str>| Ok(lines);
    match variant {
        "text" | "file" | "copy_file" | "symlink" | "copy_dir" if exists && !replace => Err("exists"),
        "text" => made(vec!["/x/target file 644 0:0 \"new\""]),
        "file" => made(vec!["/x/target file 600 0:0 \"bin\\0ary\""]),
        "copy_file" => made(vec!["/x/target file 604 0:0 \"copied\""]),
        "symlink" => made(vec!["/x/target -> /dest"]),
        "copy_dir" => {
            let mut lines = vec![
                "/x/target dir 755 0:0",
                "/x/target/a file 644 0:0 \"A\"",
                "/x/target/ln -> a",
                "/x/target/sub dir 755 0:0",
                "/x/target/sub/b file 644 0:0 \"B\"",
            ];
            if kind == Dir {
                // Copied over an existing directory: merged with it.
                lines.insert(2, "/x/target/inner file 644 0:0 \"in\"");
            }
            made(lines)
        }
        "mkdir" => match kind {
            Absent | RemovedEarlier => made(vec!["/x/target dir 711 0:0"]),
            Dir => made(vec!["/x/target dir 755 0:0", "/x/target/inner file 644 0:0 \"in\""]),
            File => Err("path exists and is not a directory (regular file)"),
            Symlink => Err("path exists and is not a directory (symlink)"),
        },
        "remove" => made(vec![]),
        "append" => match kind {
            File => made(vec!["/x/target file 640 5:6 \"old+more\""]),
            Absent | RemovedEarlier => Err("file not found in rootfs"),
            Dir => Err("is not a regular file (directory)"),
            Symlink => Err("is not a regular file (symlink)"),
        },
        other => panic!("{other}"),
    }
}

fn below_target(view: &[String]) -> Vec<String> {
    view.iter().filter(|l| l.starts_with("/x/target")).cloned().collect()
}

fn owners_if_root(lines: Vec<&str>) -> Vec<String> {
    let strip = |l: &str| {
        if is_root() {
            l.to_string()
        } else {
            l.replace(" 0:0", " -").replace(" 5:6", " -")
        }
    };
    lines.into_iter().map(strip).collect()
}

#[test]
fn every_variant_against_every_kind_of_existing_entry_on_both_roots() {
    let host = tempfile::tempdir().unwrap();
    host_sources(host.path());
    let mut checked = 0;
    for variant in [
        "text",
        "file",
        "copy_file",
        "copy_dir",
        "symlink",
        "mkdir",
        "remove",
        "append",
    ] {
        for kind in LOWERS {
            for replace in [false, true] {
                let layers = layers(kind);
                let patches = patches(variant, kind, replace, host.path());
                let case = format!("{variant} over {kind:?}, replace={replace}");
                let image = on_image(&layers, &patches);
                let bind = on_host_dir(&layers, &patches);
                match (&image, expected(variant, kind, replace)) {
                    (Ok(view), Ok(lines)) => {
                        assert_eq!(below_target(view), owners_if_root(lines), "{case}");
                        let x = if is_root() { "/x dir 750 7:7" } else { "/x dir 750 -" };
                        assert!(
                            view.contains(&x.to_string()),
                            "{case}: /x keeps its attributes: {view:#?}"
                        );
                        assert!(view.iter().any(|l| l.starts_with("/x/keep")), "{case}");
                    }
                    (Err(msg), Err(fragment)) => assert!(msg.contains(fragment), "{case}: {msg}"),
                    (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
                }
                match (&image, &bind) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{case}: image and host dir disagree"),
                    (Err(a), Err(b)) => {
                        // Same error, worded for where the path was found.
                        let norm = |m: &str| m.replace("path exists in image layer", "path already exists in rootfs");
                        assert_eq!(norm(a).replace("in lower layer ", ""), norm(b), "{case}");
                    }
                    _ => panic!("{case}: image gave {image:?}, host dir gave {bind:?}"),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 80);
}

#[test]
fn remove_of_a_lower_path_is_a_whiteout_and_of_a_new_one_leaves_nothing() {
    let layers = layers(Lower::File);
    let upper = build_upper(&[Patch::remove("/x/target")], &mut stack(&layers), 0).unwrap();
    assert!(upper.get(&[b"x", b"target"]).unwrap().is_whiteout());
    let new = [Patch::text("/tmp/demo.txt", "hello"), Patch::remove("/tmp/demo.txt")];
    let upper = build_upper(&new, &mut stack(&layers), 0).unwrap();
    assert!(
        upper.get(&[b"tmp", b"demo.txt"]).is_none(),
        "no whiteout for what no layer has"
    );
    let gone = [Patch::remove("/nope/never")];
    assert!(build_upper(&gone, &mut stack(&layers), 0).unwrap().entries.is_empty());
}

#[test]
fn recreating_a_removed_directory_does_not_bring_back_its_old_contents() {
    let layers = layers(Lower::Dir);
    for second in [Patch::mkdir("/x/target"), Patch::text("/x/target/new", "n")] {
        let patches = [Patch::remove("/x/target"), second.clone()];
        let view = on_image(&layers, &patches).unwrap();
        assert!(!view.iter().any(|l| l.contains("inner")), "{second:?}: {view:#?}");
        assert_eq!(on_host_dir(&layers, &patches).unwrap(), view);
    }
}

#[test]
fn parents_must_be_directories_in_the_upper_or_any_lower() {
    let files = layers(Lower::File);
    let err = on_image(&files, &[Patch::text("/x/target/app.sh", "echo hi")]).unwrap_err();
    assert!(
        err.contains("patch path parent is not a directory: '/x/target' (regular file)"),
        "{err}"
    );
    let err = on_image(&layers(Lower::Symlink), &[Patch::mkdir("/x/target/d")]).unwrap_err();
    assert!(err.contains("'/x/target' (symlink)"), "{err}");
    let made_file = [Patch::text("/a", "file"), Patch::text("/a/b", "x")];
    let err = on_image(&files, &made_file).unwrap_err();
    assert!(err.contains("parent is not a directory: '/a' (regular file)"), "{err}");
}

#[test]
fn missing_parents_are_created_0755_and_existing_ones_keep_their_attributes() {
    let view = on_image(
        &layers(Lower::Absent),
        &[Patch::text("/new/deep/f", "x"), Patch::text("/x/f", "y")],
    )
    .unwrap();
    let owner = if is_root() { " 0:0" } else { " -" };
    assert!(view.contains(&format!("/new dir 755{owner}")), "{view:#?}");
    assert!(view.contains(&format!("/new/deep dir 755{owner}")), "{view:#?}");
    let x = if is_root() { "/x dir 750 7:7" } else { "/x dir 750 -" };
    assert!(view.contains(&x.to_string()), "{view:#?}");
}

#[test]
fn text_over_a_path_removed_by_a_lower_layer_or_hidden_by_an_opaque_dir_is_new() {
    // The bottom layer has both files; the top one deletes one and makes /etc opaque.
    let bottom = dir_of(
        0o755,
        vec![(
            "etc",
            dir(vec![("hidden.txt", file("base", 0o644)), ("gone", file("g", 0o644))]),
        )],
    );
    let mut top_etc = dir_of(0o755, vec![("gone", Node::whiteout())]);
    top_etc.set_opaque(true);
    let top = dir_of(0o755, vec![("etc", Node::Dir(top_etc))]);
    let layers = vec![bottom, top];
    for path in ["/etc/hidden.txt", "/etc/gone"] {
        let view = on_image(&layers, &[Patch::text(path, "fresh")]).unwrap();
        assert!(
            view.iter().any(|l| l.starts_with(path) && l.ends_with("\"fresh\"")),
            "{view:#?}"
        );
    }
    let err = on_image(&layers, &[Patch::append("/etc/hidden.txt", "x")]).unwrap_err();
    assert!(err.contains("file not found"), "{err}");
}

#[test]
fn append_uses_the_topmost_file_and_appends_to_a_patched_one() {
    let bottom = dir_of(0o755, vec![("etc", dir(vec![("c", file("base", 0o644))]))]);
    let top = dir_of(0o755, vec![("etc", dir(vec![("c", file("top", 0o600))]))]);
    let layers = vec![bottom, top];
    let view = on_image(
        &layers,
        &[Patch::append("/etc/c", "-patched"), Patch::append("/etc/c", "!")],
    )
    .unwrap();
    assert!(
        view.iter()
            .any(|l| l.starts_with("/etc/c file 600") && l.ends_with("\"top-patched!\"")),
        "{view:#?}"
    );
    let made = [Patch::text("/n", "a"), Patch::append("/n", "b")];
    assert!(on_image(&layers, &made).unwrap().iter().any(|l| l.ends_with("\"ab\"")));
}

#[test]
fn bad_patches_are_refused_before_anything_is_written() {
    let layers = layers(Lower::Absent);
    for (bad, fragment) in [
        (Patch::text("relative/path", "x"), "must be absolute"),
        (Patch::text("/x/../../etc/passwd", "x"), "'..'"),
        (Patch::remove("/"), "names the root"),
        (Patch::mkdir("/m").with_mode(0o170000), "bits beyond 7777"),
        (Patch::copy_file("/definitely/not/here", "/f"), "/definitely/not/here"),
        (Patch::copy_dir("/etc/hostname", "/d"), "is not a directory"),
    ] {
        // A good patch first: it must not be written either.
        let patches = [Patch::text("/first", "1"), bad.clone()];
        let err = on_image(&layers, &patches).unwrap_err();
        assert!(err.contains(fragment), "{bad:?}: {err}");
        let err = on_host_dir(&layers, &patches).unwrap_err();
        assert!(err.contains(fragment), "{bad:?}: {err}");
    }
    let conflict = [Patch::text("/x/a", "1"), Patch::text("/x/a", "2")];
    assert!(on_image(&layers, &conflict).unwrap_err().contains("already exists"));
}
