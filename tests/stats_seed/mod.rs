//! A known history for the compliance-figure tests (`tests/stats_figures.rs`) and the
//! dashboard's browser test: consents in four regions and ten audited accesses, with the
//! figures they must produce written out by hand.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use crate::common::*;

/// The upstream: a small customer document (two fields every purpose here withholds, one
/// e-mail the EU marketing purpose masks) and, under `/notes`, a body that is not JSON.
pub async fn upstream() -> Upstream {
    Upstream::start(Arc::new(|seen: Seen| {
        Box::pin(async move {
            if seen.uri.ends_with("/notes") {
                let mut r = json_response(StatusCode::OK, Bytes::from_static(b"plain text"));
                r.headers_mut()
                    .insert("content-type", "text/plain".parse().unwrap());
                return r;
            }
            let doc = json!({"id": "c", "first_name": "Anna", "email": "anna@example.eu",
                             "phone_number": "0", "national_id": "T22000129"});
            json_response(StatusCode::OK, Bytes::from(doc.to_string()))
        })
    }))
    .await
}

fn caller(name: &str) -> String {
    token(
        name,
        &[
            "marketing",
            "sale",
            "personalisation",
            "nonexistent_purpose",
        ],
        "",
    )
}

async fn access(
    gw: &TestGateway,
    who: &str,
    subject: &str,
    rest: &str,
    purpose: &str,
    gpc: bool,
) -> StatusCode {
    let url = gw.url(&format!("/api/customers/{subject}/{rest}"));
    let mut headers = vec![("x-purpose", purpose)];
    if gpc {
        headers.push(("sec-gpc", "1"));
    }
    get(&url, Some(&caller(who)), &headers).await.status
}

/// Seeds the consents and the accesses; returns when every access is answered.
pub async fn seed(gw: &TestGateway) {
    for s in ["c-eu-1", "c-eu-2", "c-eu-3", "c-eu-4"] {
        set_subject_region(gw, s, "eu").await;
    }
    for s in ["c-ca-1", "c-ca-2"] {
        set_subject_region(gw, s, "us-ca").await;
    }
    set_subject_region(gw, "c-br-1", "br").await;
    put_consent_status(gw, "c-eu-1", "marketing", "granted").await;
    put_consent_status(gw, "c-eu-2", "marketing", "denied").await;
    put_consent_status(gw, "c-eu-3", "marketing", "granted").await;
    withdraw_consent(gw, "c-eu-3", "marketing").await;
    let expiring = json!({"status": "granted", "expires_at": rfc3339_in(2)}).to_string();
    assert_eq!(
        put_consent_body(gw, "c-eu-4", "marketing", &expiring)
            .await
            .status,
        StatusCode::OK
    );
    put_consent_status(gw, "c-ca-2", "sale", "denied").await;
    // No region stored: the default region's figures.
    put_consent_status(gw, "c-def-1", "marketing", "granted").await;
    sleep_ms(2300).await;

    let ok = StatusCode::OK;
    let refused = StatusCode::FORBIDDEN;
    assert_eq!(
        access(gw, "crm", "c-eu-1", "profile", "marketing", false).await,
        ok
    );
    assert_eq!(
        access(gw, "crm", "c-eu-1", "profile", "marketing", false).await,
        ok
    );
    assert_eq!(
        access(gw, "crm", "c-eu-2", "profile", "marketing", false).await,
        refused
    );
    assert_eq!(
        access(gw, "crm", "c-eu-3", "profile", "marketing", false).await,
        refused
    );
    assert_eq!(
        access(gw, "crm", "c-eu-4", "profile", "marketing", false).await,
        refused
    );
    assert_eq!(
        access(gw, "crm", "c-ca-1", "profile", "sale", true).await,
        refused
    );
    assert_eq!(
        access(gw, "crm", "c-ca-1", "profile", "sale", false).await,
        ok
    );
    assert_eq!(
        access(gw, "crm", "c-br-1", "profile", "personalisation", false).await,
        ok
    );
    assert_eq!(
        access(gw, "crm", "c-eu-1", "notes", "marketing", false).await,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        access(gw, "ads", "c-eu-1", "profile", "marketing", false).await,
        ok
    );
    // A purpose no policy defines: audited, but never a label.
    assert_eq!(
        access(gw, "crm", "c-eu-1", "profile", "nonexistent_purpose", false).await,
        StatusCode::BAD_REQUEST
    );
}
