//! The checked-in OpenAPI document (`docs/openapi.json`) is the one the handlers generate:
//! a change to the API shows up in review as a change to that file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// Regenerates the file instead of failing when `MSB_UPDATE_OPENAPI=1`.
#[test]
fn the_checked_in_openapi_document_matches_the_handlers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = format!("{}\n", serde_json::to_string_pretty(&msb_server::openapi()).unwrap());
    if std::env::var("MSB_UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json differs from what the handlers generate: run \
         `MSB_UPDATE_OPENAPI=1 cargo test -p msb-server --test openapi` and commit the file"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_bearer_auth_and_every_resource() {
    let doc = serde_json::to_value(msb_server::openapi()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/sandboxes",
        "/v1/sandboxes/{name}",
        "/v1/sandboxes/{name}/exec",
        "/v1/sandboxes/{name}/exec/stream",
        "/health",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the document");
    }
    // The health check needs no token; everything else does.
    assert_eq!(doc["paths"]["/health"]["get"]["security"], serde_json::json!([{}]));
}
