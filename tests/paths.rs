//! Path normalisation through real sockets: bypass attempts and their exact outcomes. The
//! request line is written byte for byte, so no client library normalises it first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn dot_segments_and_duplicate_slashes_route_the_normalised_path() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = token("crm", &[], "");
    let cases = [
        ("/api/customers/../products/x", "/api/products/x"),
        ("/api/customers/c-1/../../products/x", "/api/products/x"),
        ("/api//products///x", "/api/products/x"),
        ("/api/./products/x/.", "/api/products/x/"),
        ("/api/%70roducts/x", "/api/products/x"),
        (
            "/api/products/x?next=/../customers/c-1",
            "/api/products/x?next=/../customers/c-1",
        ),
    ];
    for (sent, forwarded) in cases {
        let (status, text) = raw_get(gw.addr, sent, &t, "").await;
        assert_eq!(status, 200, "{sent}: {text}");
        assert_eq!(up.last().uri, forwarded, "{sent}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn ambiguous_paths_are_rejected_never_guessed() {
    let up = Upstream::json(json!({"ok": true})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = token("crm", &[], "");
    let bad = [
        "/api/products/%2e%2e/customers/c-1",
        "/api/products/%2E%2E/customers/c-1",
        "/api/products/.%2e/customers/c-1",
        "/api/products/%2e/x",
        "/api/products%2Fx",
        "/api/products%2fx",
        "/api/products/x%5cy",
        "/api/products/x\\..\\customers",
        "/api/products/x%00",
        "/api/products/%c0%ae%c0%ae/customers",
        "/api/products/..;/customers/c-1",
        "/../api/products/x",
        "/api/products/%zz",
    ];
    for path in bad {
        let (status, text) = raw_get(gw.addr, path, &t, "").await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("\"code\":\"bad_path\""), "{path}: {text}");
    }
    assert_eq!(up.count(), 0, "no ambiguous path reached the upstream");
    gw.shutdown().await;
}

#[tokio::test]
async fn case_and_lookalike_paths_do_not_match_routes() {
    let up = Upstream::json(json!({"ok": true})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = token("crm", &[], "");
    for path in [
        "/API/products/x",
        "/api/Products/x",
        "/api/productsx",
        "/api/customers",
    ] {
        let (status, text) = raw_get(gw.addr, path, &t, "").await;
        assert_eq!(status, 404, "{path}: {text}");
        assert!(text.contains("\"code\":\"no_route\""), "{path}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_path_that_normalises_into_a_personal_route_gets_its_checks() {
    let up = Upstream::json(json!({"id": "c-1", "email": "a@example.com"})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = token("crm", &["marketing"], "");
    // Looks like the catalogue before normalisation, is the customers route after it:
    // the personal-data checks apply (here: no purpose declared).
    let (status, text) = raw_get(gw.addr, "/api/products/../customers/c-1", &t, "").await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("\"code\":\"missing_purpose\""), "{text}");
    assert_eq!(up.count(), 0);
    gw.shutdown().await;
}
