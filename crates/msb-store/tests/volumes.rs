//! Volume records: created once, listed newest first, read back with their labels, removed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use msb_store::{Store, StoreError};
use std::collections::BTreeMap;

#[test]
fn volumes_are_recorded_once_listed_and_removed() {
    let (_dir, paths) = common::layout();
    let store = Store::open(&paths).unwrap();
    let labels = BTreeMap::from([("team".to_string(), "data".to_string())]);
    let made = store.insert_volume("cache", &labels).unwrap();
    assert_eq!(made.labels, labels);
    assert!(matches!(
        store.insert_volume("cache", &BTreeMap::new()),
        Err(StoreError::VolumeExists { .. })
    ));
    assert!(matches!(
        store.insert_volume("bad name", &BTreeMap::new()),
        Err(StoreError::InvalidName(_))
    ));
    store.insert_volume("other", &BTreeMap::new()).unwrap();
    let names: Vec<String> = store.list_volumes().unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names.len(), 2);
    assert_eq!(store.get_volume("cache").unwrap().unwrap(), made);
    assert!(store.delete_volume("cache").unwrap());
    assert!(!store.delete_volume("cache").unwrap());
    assert_eq!(store.get_volume("cache").unwrap(), None);
}
