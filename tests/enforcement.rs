//! Consent enforcement on a personal-data route through real sockets: every decision path of
//! the shipped `eu`, `us-ca` and `default` policies, purpose and region resolution, GPC, and
//! what reaches the upstream and the caller.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;

/// Every purpose the shipped policies define, so the caller may declare any of them.
const ALL_PURPOSES: &[&str] = &[
    "marketing",
    "analytics",
    "personalisation",
    "order_fulfilment",
    "support",
    "tax_reporting",
    "sale",
    "cross_context_advertising",
    "identity_verification",
];

struct Setup {
    up: Upstream,
    gw: TestGateway,
    token: String,
}

async fn setup() -> Setup {
    let up = Upstream::json(sample_customer("c-1")).await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    let token = token("crm", ALL_PURPOSES, "");
    Setup { up, gw, token }
}

impl Setup {
    /// GET the subject's customer document with a purpose and extra headers.
    async fn fetch(&self, subject: &str, purpose: Option<&str>, extra: &[(&str, &str)]) -> Reply {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(p) = purpose {
            headers.push(("x-purpose", p));
        }
        headers.extend_from_slice(extra);
        get(
            &self.gw.url(&format!("/api/customers/{subject}/profile")),
            Some(&self.token),
            &headers,
        )
        .await
    }

    /// Asserts an allowed, released answer that reached the upstream once more.
    async fn expect_allow(&self, subject: &str, purpose: &str, extra: &[(&str, &str)]) -> Reply {
        let before = self.up.count();
        let r = self.fetch(subject, Some(purpose), extra).await;
        assert_eq!(r.status, StatusCode::OK, "{purpose}: {}", r.text());
        assert_eq!(r.headers["x-consentgate-decision"], "allow", "{purpose}");
        assert_eq!(self.up.count(), before + 1, "{purpose}: upstream contacted");
        r
    }

    /// Asserts a refusal with `status`/`code` that never reached the upstream.
    async fn expect_refused(
        &self,
        subject: &str,
        purpose: Option<&str>,
        extra: &[(&str, &str)],
        status: StatusCode,
        code: &str,
    ) -> Reply {
        let before = self.up.count();
        let r = self.fetch(subject, purpose, extra).await;
        assert_eq!(r.status, status, "{purpose:?}: {}", r.text());
        assert_eq!(r.code(), code, "{purpose:?}: {}", r.text());
        assert_eq!(r.headers["x-consentgate-decision"], "deny", "{purpose:?}");
        assert_eq!(
            self.up.count(),
            before,
            "{purpose:?}: upstream not contacted"
        );
        assert!(
            !r.text().contains("Schmidt"),
            "a refusal carries no personal data"
        );
        r
    }

    async fn expect_consent_required(&self, subject: &str, purpose: &str, extra: &[(&str, &str)]) {
        self.expect_refused(
            subject,
            Some(purpose),
            extra,
            StatusCode::FORBIDDEN,
            "consent_required",
        )
        .await;
    }
}

#[tokio::test]
async fn eu_opt_in_needs_a_granted_unexpired_consent() {
    let s = setup().await;
    set_subject_region(&s.gw, "eu-1", "eu").await;

    // No consent recorded.
    s.expect_consent_required("eu-1", "marketing", &[]).await;
    // Denied.
    put_consent_status(&s.gw, "eu-1", "marketing", "denied").await;
    s.expect_consent_required("eu-1", "marketing", &[]).await;
    // Granted.
    put_consent_status(&s.gw, "eu-1", "marketing", "granted").await;
    let r = s.expect_allow("eu-1", "marketing", &[]).await;
    assert_eq!(r.headers["x-consentgate-region"], "eu");
    assert_eq!(r.headers["content-type"], "application/json");
    let body = r.json();
    assert_eq!(body["id"], "c-1");
    assert_eq!(body["first_name"], "Anna");
    // Withdrawn.
    withdraw_consent(&s.gw, "eu-1", "marketing").await;
    s.expect_consent_required("eu-1", "marketing", &[]).await;
    // Granted again, then expired.
    let grant = json!({"status": "granted", "expires_at": rfc3339_in(3)}).to_string();
    let r = put_consent_body(&s.gw, "eu-1", "marketing", &grant).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    s.expect_allow("eu-1", "marketing", &[]).await;
    sleep_ms(3200).await;
    s.expect_consent_required("eu-1", "marketing", &[]).await;
    let current = current_consents(&s.gw, "eu-1").await;
    assert_eq!(current["consents"][0]["effective"], "expired");

    // A consent for another purpose does not count for this one.
    put_consent_status(&s.gw, "eu-1", "analytics", "granted").await;
    s.expect_consent_required("eu-1", "personalisation", &[])
        .await;
    s.expect_allow("eu-1", "analytics", &[]).await;
    // Nor does another subject's consent.
    set_subject_region(&s.gw, "eu-2", "eu").await;
    s.expect_consent_required("eu-2", "analytics", &[]).await;
    s.gw.shutdown().await;
}

#[tokio::test]
async fn eu_contract_and_legitimate_interest_need_no_consent_but_are_minimised() {
    let s = setup().await;
    set_subject_region(&s.gw, "eu-3", "eu").await;
    // Even an explicit denial of marketing does not affect contract purposes.
    put_consent_status(&s.gw, "eu-3", "marketing", "denied").await;
    let r = s.expect_allow("eu-3", "order_fulfilment", &[]).await;
    assert_eq!(r.headers["x-consentgate-region"], "eu");
    let text = r.text();
    let body = r.json();
    assert_eq!(body["last_name"], "Schmidt", "the contract needs the name");
    assert!(
        body.get("date_of_birth").is_none(),
        "not in the allow-list: {body}"
    );
    assert!(body.get("support_notes").is_none(), "{body}");
    assert!(!text.contains("1987-04-12"));
    assert!(!text.contains("4111 1111 1111 1111"), "card masked: {text}");
    assert!(!text.contains("DE89 3704 0044 0532 0130 00"), "IBAN masked");
    assert!(
        body["payment"]["card_number"]
            .as_str()
            .unwrap()
            .ends_with("1111")
    );
    assert_eq!(
        r.headers["content-length"],
        r.body.len().to_string().as_str()
    );

    let r = s.expect_allow("eu-3", "support", &[]).await;
    let text = r.text();
    assert!(r.json().get("payment").is_none(), "{text}");
    assert!(!text.contains("T22000129"), "national id removed");
    assert!(
        !text.contains("4111 1111 1111 1111"),
        "card in notes removed"
    );
    assert!(!text.contains("+49 30 1234567"), "phone in notes removed");
    s.gw.shutdown().await;
}

#[tokio::test]
async fn responses_never_carry_fields_the_policy_removes() {
    let s = setup().await;
    set_subject_region(&s.gw, "eu-4", "eu").await;
    put_consent_status(&s.gw, "eu-4", "marketing", "granted").await;
    let r = s.expect_allow("eu-4", "marketing", &[]).await;
    let text = r.text();
    let body = r.json();
    // Marketing sees id, first_name, email (masked) and preferences only.
    for removed in [
        "Schmidt",
        "+49 30 1234567",
        "1987-04-12",
        "Hauptstr. 5",
        "4111 1111 1111 1111",
        "DE89 3704 0044 0532 0130 00",
        "T22000129",
        "SKU-1234",
        "anna.schmidt@example.eu",
    ] {
        assert!(!text.contains(removed), "{removed:?} leaked: {text}");
    }
    assert_eq!(body["email"], "a***@example.eu");
    assert_eq!(body["preferences"]["language"], "de");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["email", "first_name", "id", "preferences"]);

    // Analytics: the id is pseudonymised, no names at all.
    put_consent_status(&s.gw, "eu-4", "analytics", "granted").await;
    let r = s.expect_allow("eu-4", "analytics", &[]).await;
    let text = r.text();
    let body = r.json();
    assert!(!text.contains("Anna"), "{text}");
    assert!(!text.contains("anna.schmidt"), "{text}");
    assert_ne!(body["id"], "c-1", "pseudonymised: {body}");
    assert_eq!(body["orders"][0]["sku"], "SKU-1234");
    assert!(body["orders"][0].get("placed_at").is_none(), "{body}");
    s.gw.shutdown().await;
}

#[tokio::test]
async fn us_ca_opt_out_is_allowed_until_the_consumer_says_no() {
    let s = setup().await;
    set_subject_region(&s.gw, "ca-1", "us-ca").await;
    // No record: allowed.
    let r = s.expect_allow("ca-1", "sale", &[]).await;
    assert_eq!(r.headers["x-consentgate-region"], "us-ca");
    // Denied (opted out): refused.
    put_consent_status(&s.gw, "ca-1", "sale", "denied").await;
    s.expect_consent_required("ca-1", "sale", &[]).await;
    // Opted back in.
    put_consent_status(&s.gw, "ca-1", "sale", "granted").await;
    s.expect_allow("ca-1", "sale", &[]).await;
    // Withdrawn: refused.
    withdraw_consent(&s.gw, "ca-1", "sale").await;
    s.expect_consent_required("ca-1", "sale", &[]).await;
    // Other opt-out purposes are unaffected.
    s.expect_allow("ca-1", "cross_context_advertising", &[])
        .await;
    s.gw.shutdown().await;
}

#[tokio::test]
async fn gpc_signal_counts_only_as_exact_one() {
    let s = setup().await;
    set_subject_region(&s.gw, "ca-2", "us-ca").await;
    // us-ca honours GPC; `sale` and `cross_context_advertising` stop on it.
    s.expect_consent_required("ca-2", "sale", &[("sec-gpc", "1")])
        .await;
    s.expect_consent_required("ca-2", "cross_context_advertising", &[("sec-gpc", "1")])
        .await;
    // GPC also beats a recorded grant for a purpose it stops.
    put_consent_status(&s.gw, "ca-2", "sale", "granted").await;
    s.expect_consent_required("ca-2", "sale", &[("sec-gpc", "1")])
        .await;
    // Values other than exactly `1` are ignored.
    for v in ["0", "true", "yes", "1.0", "01"] {
        s.expect_allow("ca-2", "sale", &[("sec-gpc", v)]).await;
    }
    // First-party marketing is opt-out but `gpc_opt_out: false`: GPC alone does not stop it.
    s.expect_allow("ca-2", "marketing", &[("sec-gpc", "1")])
        .await;

    // Repeated headers: any `1` among them counts (raw socket so both lines go out as sent).
    let path = "/api/customers/ca-2/profile";
    for extra in [
        "X-Purpose: sale\r\nSec-GPC: 0\r\nSec-GPC: 1\r\n",
        "X-Purpose: sale\r\nSec-GPC: 1\r\nSec-GPC: 0\r\n",
    ] {
        let before = s.up.count();
        let (status, text) = raw_get(s.gw.addr, path, &s.token, extra).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("consent_required"), "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("x-consentgate-decision: deny"),
            "{text}"
        );
        assert_eq!(s.up.count(), before);
    }
    let (status, text) = raw_get(
        s.gw.addr,
        path,
        &s.token,
        "X-Purpose: sale\r\nSec-GPC: 0\r\nSec-GPC: true\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");

    // eu does not honour GPC: a granted opt-in purpose stays allowed.
    set_subject_region(&s.gw, "eu-5", "eu").await;
    put_consent_status(&s.gw, "eu-5", "marketing", "granted").await;
    s.expect_allow("eu-5", "marketing", &[("sec-gpc", "1")])
        .await;
    // An explicit opt-in grant is not overridden by GPC (the policy engine's documented rule:
    // opt-in needs a granted, unexpired consent; GPC is an opt-out signal). Without a grant
    // the opt-in purpose is refused either way.
    s.expect_consent_required("nowhere-1", "marketing", &[("sec-gpc", "1")])
        .await;
    put_consent_status(&s.gw, "nowhere-1", "marketing", "granted").await;
    s.expect_allow("nowhere-1", "marketing", &[]).await;
    s.expect_allow("nowhere-1", "marketing", &[("sec-gpc", "1")])
        .await;
    s.gw.shutdown().await;
}

#[tokio::test]
async fn gpc_header_reaches_the_upstream_unchanged() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config_text(up.addr, "")).await;
    set_subject_region(&gw, "ca-3", "us-ca").await;
    let t = token("crm", ALL_PURPOSES, "");
    let url = gw.url("/api/customers/ca-3/orders");
    for purpose in ["order_fulfilment", "marketing"] {
        let r = get(&url, Some(&t), &[("x-purpose", purpose), ("sec-gpc", "1")]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.headers["x-consentgate-decision"], "allow");
        let seen = up.last();
        let gpc: Vec<_> = seen.headers.get_all("sec-gpc").iter().collect();
        assert_eq!(gpc, ["1"], "{purpose}");
        assert_eq!(seen.headers["x-purpose"], purpose);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn purpose_must_be_one_declared_name_the_caller_may_use() {
    let s = setup().await;
    set_subject_region(&s.gw, "eu-6", "eu").await;
    put_consent_status(&s.gw, "eu-6", "marketing", "granted").await;

    // The caller's token does not list the purpose.
    let narrow = token("support-desk", &["support"], "");
    let before = s.up.count();
    let r = get(
        &s.gw.url("/api/customers/eu-6/profile"),
        Some(&narrow),
        &[("x-purpose", "marketing")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.code(), "forbidden_purpose");
    assert_eq!(r.headers["x-consentgate-decision"], "deny");
    assert_eq!(s.up.count(), before);
    // No purposes claim at all.
    let none = token("nobody", &[], "");
    let r = get(
        &s.gw.url("/api/customers/eu-6/profile"),
        Some(&none),
        &[("x-purpose", "support")],
    )
    .await;
    assert_eq!(r.code(), "forbidden_purpose");
    assert_eq!(s.up.count(), before);

    // No X-Purpose.
    s.expect_refused(
        "eu-6",
        None,
        &[],
        StatusCode::BAD_REQUEST,
        "missing_purpose",
    )
    .await;
    // Two X-Purpose headers, even identical ones.
    for second in ["marketing", "support"] {
        s.expect_refused(
            "eu-6",
            Some("marketing"),
            &[("x-purpose", second)],
            StatusCode::BAD_REQUEST,
            "missing_purpose",
        )
        .await;
    }
    // A list in one header, or anything that is not one purpose name.
    for bad in [
        "marketing, support",
        "marketing,support",
        "Marketing",
        "marketing;q=1",
    ] {
        let before = s.up.count();
        let r = s.fetch("eu-6", Some(bad), &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text());
        assert!(
            ["unknown_purpose", "missing_purpose"].contains(&r.code().as_str()),
            "{bad:?}: {}",
            r.text()
        );
        assert_eq!(s.up.count(), before);
    }
    // A purpose the subject's region policy does not define (`sale` is us-ca only).
    s.expect_refused(
        "eu-6",
        Some("sale"),
        &[],
        StatusCode::BAD_REQUEST,
        "unknown_purpose",
    )
    .await;
    // A purpose no policy defines, even if the token lists it.
    let odd = token("crm", &["astrology"], "");
    let r = get(
        &s.gw.url("/api/customers/eu-6/profile"),
        Some(&odd),
        &[("x-purpose", "astrology")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "unknown_purpose");
    assert_eq!(s.up.count(), before);
    s.gw.shutdown().await;
}

#[tokio::test]
async fn region_comes_from_the_store_never_from_headers() {
    let s = setup().await;
    set_subject_region(&s.gw, "eu-7", "eu").await;
    // `marketing` is opt-in in eu but opt-out in us-ca: a downgrade would allow it.
    let tricks: [&[(&str, &str)]; 4] = [
        &[("x-region", "us-ca")],
        &[("x-consentgate-region", "us-ca")],
        &[("x-region", "us-ca"), ("x-consentgate-region", "us-ca")],
        &[("x-subject-region", "us-ca"), ("region", "us-ca")],
    ];
    for extra in tricks {
        let r = s
            .expect_refused(
                "eu-7",
                Some("marketing"),
                extra,
                StatusCode::FORBIDDEN,
                "consent_required",
            )
            .await;
        assert_eq!(r.headers["x-consentgate-region"], "eu", "{extra:?}");
    }
    // On an allowed request the client's region header is not passed on as the gateway's.
    let r = s
        .expect_allow(
            "eu-7",
            "order_fulfilment",
            &[("x-consentgate-region", "us-ca")],
        )
        .await;
    assert_eq!(r.headers["x-consentgate-region"], "eu");
    assert_eq!(r.headers.get_all("x-consentgate-region").iter().count(), 1);
    assert!(s.up.last().headers.get("x-consentgate-region").is_none());
    s.gw.shutdown().await;
}

#[tokio::test]
async fn region_change_takes_effect_on_the_next_request() {
    let s = setup().await;
    set_subject_region(&s.gw, "mover-1", "eu").await;
    s.expect_consent_required("mover-1", "marketing", &[]).await;
    set_subject_region(&s.gw, "mover-1", "us-ca").await;
    let r = s.expect_allow("mover-1", "marketing", &[]).await;
    assert_eq!(r.headers["x-consentgate-region"], "us-ca");
    set_subject_region(&s.gw, "mover-1", "eu").await;
    let r = s
        .expect_refused(
            "mover-1",
            Some("marketing"),
            &[],
            StatusCode::FORBIDDEN,
            "consent_required",
        )
        .await;
    assert_eq!(r.headers["x-consentgate-region"], "eu");
    // `sale` exists in us-ca only: unknown in eu.
    s.expect_refused(
        "mover-1",
        Some("sale"),
        &[],
        StatusCode::BAD_REQUEST,
        "unknown_purpose",
    )
    .await;
    s.gw.shutdown().await;
}

#[tokio::test]
async fn subject_without_a_region_gets_the_default_policy() {
    let s = setup().await;
    // Never written about: `default` (strictest) applies.
    let r = s
        .expect_refused(
            "stranger-1",
            Some("marketing"),
            &[],
            StatusCode::FORBIDDEN,
            "consent_required",
        )
        .await;
    assert_eq!(r.headers["x-consentgate-region"], "default");
    let r = s.expect_allow("stranger-1", "order_fulfilment", &[]).await;
    assert_eq!(r.headers["x-consentgate-region"], "default");
    let body = r.json();
    assert!(
        body.get("payment").is_none(),
        "default removes payment: {body}"
    );
    // `sale` is not defined by the default policy.
    s.expect_refused(
        "stranger-1",
        Some("sale"),
        &[],
        StatusCode::BAD_REQUEST,
        "unknown_purpose",
    )
    .await;
    // A consent recorded without a region still uses the default policy (opt-in).
    put_consent_status(&s.gw, "stranger-1", "marketing", "granted").await;
    let r = s.expect_allow("stranger-1", "marketing", &[]).await;
    assert_eq!(r.headers["x-consentgate-region"], "default");
    s.gw.shutdown().await;
}

#[tokio::test]
async fn an_encoded_subject_is_the_same_subject() {
    let s = setup().await;
    set_subject_region(&s.gw, "eu-8", "eu").await;
    // `%2D` is `-`, `%65` is `e`: the path normalises to the same subject, whose eu policy applies.
    for subject in ["eu%2D8", "%65u-8", "eu%2d8"] {
        let r = s
            .expect_refused(
                subject,
                Some("marketing"),
                &[],
                StatusCode::FORBIDDEN,
                "consent_required",
            )
            .await;
        assert_eq!(r.headers["x-consentgate-region"], "eu", "{subject}");
    }
    put_consent_status(&s.gw, "eu-8", "marketing", "granted").await;
    s.expect_allow("eu%2D8", "marketing", &[]).await;
    assert_eq!(s.up.last().uri, "/api/customers/eu-8/profile");
    s.gw.shutdown().await;
}

#[tokio::test]
async fn imported_consents_and_regions_are_enforced() {
    let s = setup().await;
    let ndjson = [
        json!({"subject": "imp-eu", "purpose": "marketing", "status": "granted", "region": "eu"}),
        json!({"subject": "imp-ca", "purpose": "sale", "status": "denied", "region": "us-ca"}),
    ]
    .map(|l| l.to_string())
    .join("\n");
    let r = send(build_request(
        http::Method::POST,
        &admin_url(&s.gw, "/v1/consents/import"),
        Some(&consent_admin_token()),
        Some(&ndjson),
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = s.expect_allow("imp-eu", "marketing", &[]).await;
    assert_eq!(r.headers["x-consentgate-region"], "eu");
    s.expect_consent_required("imp-eu", "analytics", &[]).await;
    s.expect_consent_required("imp-ca", "sale", &[]).await;
    let r = s.expect_allow("imp-ca", "marketing", &[]).await;
    assert_eq!(r.headers["x-consentgate-region"], "us-ca");
    s.gw.shutdown().await;
}
