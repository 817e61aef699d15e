//! HTTPS on the gateway listener (rustls), HTTP/2 by ALPN, and mTLS refusal at the handshake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

fn tls_config(client_cert: bool) -> rustls::ClientConfig {
    consentgate::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dev_dir().join("ca.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    if client_cert {
        let certs: Vec<_> = CertificateDer::pem_file_iter(dev_dir().join("client.crt"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(dev_dir().join("client.key")).unwrap();
        builder.with_client_auth_cert(certs, key).unwrap()
    } else {
        builder.with_no_client_auth()
    }
}

async fn https_get(
    cfg: rustls::ClientConfig,
    url: &str,
    h2: bool,
) -> Result<(StatusCode, Version, Bytes), String> {
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only();
    let connector = if h2 {
        b.enable_http2().build()
    } else {
        b.enable_http1().build()
    };
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let req = Request::get(url)
        .header("authorization", format!("Bearer {}", token("crm", &[], "")))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let (status, version) = (resp.status(), resp.version());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, version, body))
}

fn tls_gateway_config(upstream: std::net::SocketAddr, mtls: bool) -> String {
    let d = dev_dir().display();
    let mut extra = format!("tls_cert = \"{d}/gateway.crt\"\ntls_key = \"{d}/gateway.key\"\n");
    if mtls {
        extra.push_str(&format!("client_ca = \"{d}/ca.crt\"\n"));
    }
    config_text(upstream, &extra)
}

#[tokio::test]
async fn https_listener_serves_http1_and_http2() {
    let up = Upstream::json(json!({"ok": true})).await;
    let gw = TestGateway::start(&tls_gateway_config(up.addr, false)).await;
    let url = format!("https://localhost:{}/api/products/1", gw.addr.port());
    let (status, version, body) = https_get(tls_config(false), &url, false).await.unwrap();
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_11));
    assert_eq!(body, r#"{"ok":true}"#);
    let (status, version, _) = https_get(tls_config(false), &url, true).await.unwrap();
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(up.last().headers["x-forwarded-proto"], "https");
    // Plain HTTP to the TLS port does not get a response.
    let plain = client()
        .request(
            Request::get(gw.url("/api/products/1"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP on the TLS port gets no HTTP answer"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn mtls_refuses_a_client_without_a_certificate() {
    let up = Upstream::json(json!({"ok": true})).await;
    let gw = TestGateway::start(&tls_gateway_config(up.addr, true)).await;
    let url = format!("https://localhost:{}/api/products/1", gw.addr.port());
    let err = https_get(tls_config(false), &url, false).await.unwrap_err();
    assert!(
        err.to_lowercase().contains("certificate")
            || err.contains("Connect")
            || err.contains("tls"),
        "{err}"
    );
    assert_eq!(up.count(), 0, "nothing reached the upstream");
    let (status, _, _) = https_get(tls_config(true), &url, false).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(up.count(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn https_upstreams_are_reached_with_the_configured_ca() {
    // An HTTPS upstream using the dev "upstream" certificate.
    consentgate::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = consentgate::config::TlsSettings {
        cert: dev_dir().join("upstream.crt"),
        key: dev_dir().join("upstream.key"),
        client_ca: None,
    };
    let acceptor = consentgate::server::acceptor(&settings).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(json_response(
                        StatusCode::OK,
                        Bytes::from_static(br#"{"tls":true}"#),
                    ))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    let d = dev_dir().display();
    let config = config_text(addr, &format!("upstream_ca = \"{d}/ca.crt\"\n")).replace(
        &format!("http://{addr}"),
        &format!("https://localhost:{}", addr.port()),
    );
    let gw = TestGateway::start(&config).await;
    let r = get(
        &gw.url("/api/products/1"),
        Some(&token("crm", &[], "")),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["tls"], true);
    gw.shutdown().await;

    // Without the CA the upstream's certificate is not trusted: 502.
    let config = config_text(addr, "").replace(
        &format!("http://{addr}"),
        &format!("https://localhost:{}", addr.port()),
    );
    let gw = TestGateway::start(&config).await;
    let r = get(
        &gw.url("/api/products/1"),
        Some(&token("crm", &[], "")),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    gw.shutdown().await;
}
