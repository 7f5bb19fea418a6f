//! Sandboxes: insert, read, the state machine and its refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use msb_store::{SandboxState, Store, StoreError};
use msb_types::{RootSpec, SandboxSpec};
use SandboxState::*;

fn spec(name: &str) -> String {
    serde_json::to_string(&SandboxSpec::new(name, RootSpec::Bind("/srv/root".into()))).unwrap()
}

fn state(store: &Store, name: &str) -> SandboxState {
    store.get_sandbox(name).unwrap().unwrap().state
}

#[track_caller]
fn assert_invalid(result: Result<(), StoreError>, want_from: SandboxState, want_to: SandboxState) {
    match result {
        Err(StoreError::InvalidTransition { name, from, to }) => {
            assert_eq!((from, to), (want_from, want_to), "{name}");
        }
        other => panic!("expected InvalidTransition {want_from} -> {want_to}, got {other:?}"),
    }
}

#[test]
fn a_sandbox_goes_through_its_life() {
    let (_dir, _paths, store) = common::store();
    store.insert_sandbox("web", &spec("web")).unwrap();
    let rec = store.get_sandbox("web").unwrap().unwrap();
    assert_eq!(rec.state, Created);
    assert_eq!((rec.supervisor_pid, rec.vmm_pid, rec.started_at), (None, None, None));
    assert_eq!(rec.created_at, rec.updated_at);
    let decoded: SandboxSpec = rec.spec().unwrap();
    assert_eq!(decoded.name, "web");

    store.set_running("web", 100, 101).unwrap();
    let rec = store.get_sandbox("web").unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.supervisor_pid, rec.vmm_pid),
        (Running, Some(100), Some(101))
    );
    assert!(rec.started_at.is_some());

    store.set_stopped("web", Some(3), "exited").unwrap();
    let rec = store.get_sandbox("web").unwrap().unwrap();
    assert_eq!(rec.state, Stopped);
    assert_eq!((rec.supervisor_pid, rec.vmm_pid), (None, None));
    assert_eq!((rec.exit_code, rec.exit_reason.as_deref()), (Some(3), Some("exited")));
    assert!(rec.stopped_at.is_some());

    // Restart clears the last exit; a crash is recorded without an exit code.
    store.set_running("web", 200, 201).unwrap();
    let rec = store.get_sandbox("web").unwrap().unwrap();
    assert_eq!((rec.exit_code, rec.exit_reason, rec.stopped_at), (None, None, None));
    store.set_crashed("web", "supervisor died").unwrap();
    let rec = store.get_sandbox("web").unwrap().unwrap();
    assert_eq!((rec.state, rec.exit_code), (Crashed, None));
    assert_eq!(rec.exit_reason.as_deref(), Some("supervisor died"));
    store.set_running("web", 300, 301).unwrap();
    store.set_stopped("web", None, "killed").unwrap();

    assert!(store.remove_sandbox("web").unwrap());
    assert!(store.get_sandbox("web").unwrap().is_none());
    assert!(!store.remove_sandbox("web").unwrap());
}

#[test]
fn invalid_transitions_are_refused_and_change_nothing() {
    let (_dir, _paths, store) = common::store();
    store.insert_sandbox("s", "{}").unwrap();
    // Nothing goes back to Created.
    assert_eq!(Created.allowed_from(), &[] as &[SandboxState]);

    store.set_running("s", 1, 2).unwrap();
    assert_invalid(store.set_running("s", 3, 4), Running, Running);
    let rec = store.get_sandbox("s").unwrap().unwrap();
    assert_eq!(rec.supervisor_pid, Some(1), "a refused change writes nothing");

    store.set_stopped("s", Some(0), "done").unwrap();
    assert_invalid(store.set_stopped("s", Some(1), "again"), Stopped, Stopped);
    assert_invalid(store.set_crashed("s", "late"), Stopped, Crashed);
    let rec = store.get_sandbox("s").unwrap().unwrap();
    assert_eq!((rec.exit_code, rec.exit_reason.as_deref()), (Some(0), Some("done")));

    store.set_running("s", 5, 6).unwrap();
    store.set_crashed("s", "gone").unwrap();
    assert_invalid(store.set_crashed("s", "gone"), Crashed, Crashed);
    assert_invalid(store.set_stopped("s", None, "stop"), Crashed, Stopped);
    assert_eq!(state(&store, "s"), Crashed);

    let err = store.set_crashed("s", "x").unwrap_err();
    assert_eq!(err.to_string(), "sandbox 's' is Crashed; it cannot become Crashed");

    // Created may go straight to Stopped (spawn failed) or Crashed.
    store.insert_sandbox("t", "{}").unwrap();
    store.set_stopped("t", None, "spawn failed").unwrap();
    store.insert_sandbox("u", "{}").unwrap();
    store.set_crashed("u", "boot failed").unwrap();
}

#[test]
fn a_running_sandbox_cannot_be_removed() {
    let (_dir, _paths, store) = common::store();
    store.insert_sandbox("busy", "{}").unwrap();
    store.set_running("busy", 1, 2).unwrap();
    let err = store.remove_sandbox("busy").unwrap_err();
    assert!(
        matches!(err, StoreError::SandboxRunning { ref name } if name == "busy"),
        "{err:?}"
    );
    assert!(err.to_string().contains("msb stop busy"), "{err}");
    assert_eq!(state(&store, "busy"), Running);
    store.set_stopped("busy", Some(0), "ok").unwrap();
    assert!(store.remove_sandbox("busy").unwrap());
}

#[test]
fn unknown_duplicate_and_malformed_sandboxes_are_refused() {
    let (_dir, _paths, store) = common::store();
    for result in [
        store.set_running("ghost", 1, 2),
        store.set_stopped("ghost", None, "x"),
        store.set_crashed("ghost", "x"),
    ] {
        assert!(
            matches!(result, Err(StoreError::SandboxNotFound { ref name }) if name == "ghost"),
            "{result:?}"
        );
    }
    assert!(store.get_sandbox("ghost").unwrap().is_none());

    store.insert_sandbox("dup", "{}").unwrap();
    let err = store.insert_sandbox("dup", r#"{"other":1}"#).unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { ref name } if name == "dup"),
        "{err:?}"
    );
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        store.get_sandbox("dup").unwrap().unwrap().spec_json,
        "{}",
        "the first one stays"
    );

    assert!(matches!(
        store.insert_sandbox("../etc", "{}"),
        Err(StoreError::InvalidName(_))
    ));
    assert!(matches!(
        store.insert_sandbox("Bad Name", "{}"),
        Err(StoreError::InvalidName(_))
    ));
    let err = store.insert_sandbox("nojson", "{not json").unwrap_err();
    assert!(matches!(err, StoreError::InvalidSpec { .. }), "{err:?}");
    assert!(store.get_sandbox("nojson").unwrap().is_none());
}

#[test]
fn list_is_oldest_first_and_survives_reopening() {
    let (_dir, paths, store) = common::store();
    for name in ["c", "a", "b"] {
        store.insert_sandbox(name, &spec(name)).unwrap();
    }
    store.set_running("a", 10, 11).unwrap();
    drop(store);
    let store = Store::open(&paths).unwrap();
    let listed = store.list_sandboxes().unwrap();
    // Same second: ties go by name.
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(listed.len(), 3);
    if listed.iter().all(|s| s.created_at == listed[0].created_at) {
        assert_eq!(names, sorted);
    }
    let a = listed.iter().find(|s| s.name == "a").unwrap();
    assert_eq!((a.state, a.vmm_pid), (Running, Some(11)));
}

#[test]
fn a_damaged_state_row_is_reported_not_unwrapped() {
    let (_dir, paths, store) = common::store();
    store.insert_sandbox("odd", "{}").unwrap();
    // A hand edit (or a bug elsewhere) can leave a pid no process can have.
    let raw = common::raw(&paths);
    raw.execute("UPDATE sandbox SET supervisor_pid = -5 WHERE name = 'odd'", [])
        .unwrap();
    let err = store.get_sandbox("odd").unwrap_err();
    assert!(matches!(err, StoreError::BadRow { .. }), "{err:?}");
    assert!(err.to_string().contains("sandbox 'odd'"), "{err}");
    assert!(matches!(store.list_sandboxes(), Err(StoreError::BadRow { .. })));
}
