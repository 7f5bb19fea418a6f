//! `msb doctor`: one line per check on a terminal-less stdout, the same report as JSON for
//! scripts, and `-q` naming only the protections that are on. What a check finds depends on
//! the host; its shape and the protections msb always applies do not.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use msb_e2e::Sandbox as World;
use serde_json::Value;

#[test]
fn the_report_names_each_check_in_every_format() {
    let w = World::new();
    let report: Value = serde_json::from_str(&w.ok(&["doctor", "--json"])).unwrap();
    let checks = report.as_array().expect("an array");
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for name in [
        "kvm",
        "qemu-seccomp",
        "no-new-privs",
        "virtiofsd-sandbox",
        "landlock",
        "cgroups",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for c in checks {
        assert!(c["on"].is_boolean(), "{c}");
        assert!(
            !c["found"].as_str().unwrap().is_empty() && !c["why"].as_str().unwrap().is_empty(),
            "{c}"
        );
    }
    let on = |name: &str| checks.iter().any(|c| c["name"] == name && c["on"] == true);
    assert!(
        on("qemu-seccomp") && on("no-new-privs") && on("qemu-capabilities") && on("qemu-ids"),
        "always applied: {report}"
    );

    let table = w.ok(&["doctor"]);
    assert_eq!(table.lines().count(), checks.len(), "{table}");
    assert!(
        table.lines().all(|l| l.starts_with("on ") || l.starts_with("off ")),
        "{table}"
    );
    let quiet = w.ok(&["doctor", "-q"]);
    let wanted: Vec<&str> = checks
        .iter()
        .filter(|c| c["on"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(quiet.lines().collect::<Vec<_>>(), wanted);
}
