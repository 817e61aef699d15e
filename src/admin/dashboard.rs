//! `GET /dashboard`: one self-contained page for a compliance officer (no external resource,
//! charts drawn as inline SVG). It asks for an `audit:read` token, keeps it only in the tab's
//! memory, and reads `GET /v1/stats` and the access reports with it. The page itself holds
//! no data, so it needs no token.
//!
//! The Content-Security-Policy allows only the page's own inline script and style (by hash)
//! and requests to this origin.

use std::sync::LazyLock;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::Response;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue};

use crate::http::{Body, full};

const PAGE: &str = include_str!("dashboard/page.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

struct Built {
    html: String,
    csp: HeaderValue,
}

fn csp_hash(text: &str) -> String {
    let d = digest::digest(&digest::SHA256, text.as_bytes());
    format!("'sha256-{}'", STANDARD.encode(d.as_ref()))
}

static BUILT: LazyLock<Built> = LazyLock::new(|| {
    let html = PAGE
        .replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", SCRIPT);
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        csp_hash(SCRIPT),
        csp_hash(STYLE)
    );
    Built {
        html,
        csp: HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'")),
    }
});

/// The page, with its security headers.
pub(crate) fn page() -> Response<Body> {
    let built = &*BUILT;
    let mut resp = Response::new(full(built.html.clone()));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CONTENT_SECURITY_POLICY, built.csp.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained_and_its_csp_names_the_inline_code() {
        let resp = page();
        let csp = resp.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap_or_default();
        assert!(csp.contains(&csp_hash(SCRIPT)) && csp.contains(&csp_hash(STYLE)));
        assert!(csp.starts_with("default-src 'none'"));
        let html = &BUILT.html;
        assert!(!html.contains("/*SCRIPT*/") && !html.contains("/*STYLE*/"));
        for external in ["http://", "https://", "src=\"", "<link"] {
            let found = html.replace("http://www.w3.org/2000/svg", "");
            assert!(!found.contains(external), "{external}");
        }
        assert!(!SCRIPT.contains("localStorage") && !SCRIPT.contains("sessionStorage"));
        assert!(!SCRIPT.contains("innerHTML"));
    }
}
