use super::*;
use proptest::prelude::*;

#[test]
fn docker_style_names_get_defaults() {
    let r = normalize_reference("python").unwrap();
    assert_eq!(r.whole(), "docker.io/library/python:latest");
    let r = normalize_reference("ghcr.io/org/app:1.2").unwrap();
    assert_eq!(
        (r.registry(), r.repository(), r.tag()),
        ("ghcr.io", "org/app", Some("1.2"))
    );
    let digest = format!("sha256:{}", "a".repeat(64));
    let r = normalize_reference(&format!("alpine@{digest}")).unwrap();
    assert_eq!((r.digest(), r.tag()), (Some(digest.as_str()), None));
    let r = normalize_reference(&format!("alpine:3@{digest}")).unwrap();
    assert_eq!((r.digest(), r.tag()), (Some(digest.as_str()), Some("3")));
    let r = normalize_reference("127.0.0.1:5000/msb-test/busybox").unwrap();
    assert_eq!((r.registry(), r.tag()), ("127.0.0.1:5000", Some("latest")));
    let r = normalize_reference("localhost/app").unwrap();
    assert_eq!((r.registry(), r.repository()), ("localhost", "app"));
    let r = normalize_reference("index.docker.io/nginx").unwrap();
    assert_eq!(r.whole(), "docker.io/library/nginx:latest");
    let r = normalize_reference("test.com:5000").unwrap();
    assert_eq!(r.whole(), "docker.io/library/test.com:5000");
}

#[test]
fn bad_references_are_errors() {
    let long = format!("{}/x", "a".repeat(REPOSITORY_MAX));
    let long_tag = format!("app:{}", "t".repeat(TAG_MAX + 1));
    for bad in [
        "",
        "a b",
        "UPPER/case",
        "x@sha256:short",
        "a:b:c:d",
        "app:tåg",
        "app:-tag",
        "a..b",
        "a/",
        "/a",
        "host:port/a",
        "a@md5:0123456789abcdef0123456789abcdef",
        long.as_str(),
        long_tag.as_str(),
    ] {
        assert!(normalize_reference(bad).is_err(), "{bad}");
    }
}

/// Names built from the characters the grammar cares about, shaped like references.
fn reference_like() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        6 => "[a-z0-9]{1,4}([._-]{1,3}[a-z0-9]{1,4}){0,2}",
        2 => "[a-zA-Z0-9.-]{1,10}(:[0-9]{0,5})?",
        1 => "[a-zA-Z0-9._:@/-]{0,12}",
    ];
    let digest = prop_oneof![
        Just(String::new()),
        "[a-f0-9]{60,70}".prop_map(|hex| format!("@sha256:{hex}")),
        "[A-Za-z0-9+._-]{1,8}:[a-fA-F0-9]{30,34}".prop_map(|d| format!("@{d}")),
    ];
    (proptest::collection::vec(part, 1..4), "(:[a-zA-Z0-9_.-]{0,6})?", digest)
        .prop_map(|(parts, tag, digest)| format!("{}{tag}{digest}", parts.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// On ASCII names this parser and the library's regular expression agree on what is
    /// valid and on every part of what they parse.
    #[test]
    fn agrees_with_the_librarys_parser(input in reference_like()) {
        let ours = parse(&input).ok().map(|r| r.whole());
        let theirs = input
            .parse::<Reference>()
            .ok()
            .filter(|r| !r.repository().bytes().any(|b| b.is_ascii_uppercase()))
            .map(|r| r.whole());
        prop_assert_eq!(ours, theirs, "{}", input);
    }
}
