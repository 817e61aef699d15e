//! The admin route table, walked whole through real sockets: every entry with a scope refuses
//! a request without a token (401 `unauthenticated`) and a token holding every other scope
//! but its own (403 `forbidden_purpose`), and lets its own scope through; the unauthenticated
//! entries (health, readiness, metrics) need none. A new row cannot forget its check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;

fn concrete(path: &str) -> String {
    path.replace("{subject}", "scope-1")
        .replace("{purpose}", "marketing")
}

#[tokio::test]
async fn every_route_refuses_a_token_without_its_scope() {
    let up = Upstream::json(json!({})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let routes = consentgate::admin::routes();
    let scopes: Vec<&str> = routes.iter().filter_map(|r| r.scope).collect();
    assert!(scopes.len() >= 10, "the table lists the scoped endpoints");
    for r in routes {
        let path = concrete(r.path);
        let what = format!("{} {}", r.method, r.path);
        let Some(scope) = r.scope else {
            let reply = admin_call(&gw, r.method.clone(), &path, None, None).await;
            assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
            assert_ne!(reply.status, StatusCode::FORBIDDEN, "{what}");
            continue;
        };
        let none = admin_call(&gw, r.method.clone(), &path, None, None).await;
        assert_eq!(
            none.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            none.text()
        );
        assert_eq!(none.code(), "unauthenticated", "{what}");

        let bad = admin_call(&gw, r.method.clone(), &path, Some("not-a-jwt"), None).await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "{what}");

        let others: Vec<&str> = scopes.iter().copied().filter(|s| *s != scope).collect();
        let without = token("scope-tester", &["marketing"], &others.join(" "));
        let refused = admin_call(&gw, r.method.clone(), &path, Some(&without), None).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            refused.text()
        );
        assert_eq!(refused.code(), "forbidden_purpose", "{what}");
        assert!(
            refused.text().contains(scope),
            "{what}: the message names the scope"
        );

        let with = token("scope-tester", &["marketing"], scope);
        let allowed = admin_call(&gw, r.method.clone(), &path, Some(&with), None).await;
        assert_ne!(
            allowed.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            allowed.text()
        );
        assert_ne!(
            allowed.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            allowed.text()
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn paths_outside_the_table_are_404_and_wrong_methods_405() {
    let up = Upstream::json(json!({})).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let t = auditor_token();
    let r = admin_call(&gw, http::Method::GET, "/v1/nothing", Some(&t), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A method the path does not have is refused before any token is looked at.
    let r = admin_call(&gw, http::Method::DELETE, "/v1/audit", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = admin_call(&gw, http::Method::POST, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    gw.shutdown().await;
}
