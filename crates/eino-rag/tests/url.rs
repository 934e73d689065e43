//! The URL loader against a local mock server: loopback is refused by default (SSRF), and
//! with internal addresses allowed it loads and parses, follows redirects, enforces the size
//! limit and names the URL in every error.

use std::time::Duration;

use eino::ErrorKind;
use eino_rag::load::{keys, UrlLoader};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn server() -> MockServer {
    let s = MockServer::start().await;
    let page = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/docs/nested/page.html"
    ))
    .unwrap();
    Mock::given(method("GET"))
        .and(path("/page"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(page, "text/html; charset=utf-8"))
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/notes.md"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("# Notes\nhello", "application/octet-stream"),
        )
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/moved"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/page"))
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/to-metadata"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", "http://169.254.169.254/latest/meta-data/"),
        )
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(vec![b'a'; 4096], "text/plain"))
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("late")
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/gone"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&s)
        .await;
    s
}

#[tokio::test]
async fn loopback_is_refused_by_default() {
    let s = server().await;
    let url = format!("{}/page", s.uri());
    let err = UrlLoader::new().load_url(&url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message().contains("internal address 127.0.0.1"),
        "{err}"
    );
    assert!(err.message().contains(&url), "{err}");
    assert!(
        s.received_requests().await.unwrap().is_empty(),
        "no request was sent"
    );
    for bad in [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "http://169.254.169.254/latest/",
        "http://[::1]:9/",
        "not a url",
    ] {
        let err = UrlLoader::new().load_url(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
    }
}

#[tokio::test]
async fn allowed_internal_loads_parses_and_redirects() {
    let s = server().await;
    let loader = UrlLoader::new().allow_internal(true);
    let page = loader
        .load_url(&format!("{}/page", s.uri()))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(page.metadata[keys::TITLE], "Berlin travel notes");
    assert!(page.content.contains("capital of Germany"));
    assert_eq!(page.metadata[keys::SOURCE], format!("{}/page", s.uri()));
    let md = loader
        .load_url(&format!("{}/notes.md", s.uri()))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        md.metadata[keys::FORMAT],
        "markdown",
        "by extension when the type says nothing"
    );
    let moved = loader
        .load_url(&format!("{}/moved", s.uri()))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(moved.metadata[keys::FORMAT], "html");
    let err = loader
        .load_url(&format!("{}/loop", s.uri()))
        .await
        .unwrap_err();
    assert!(err.message().contains("redirects"), "{err}");
    let err = loader
        .load_url(&format!("{}/gone", s.uri()))
        .await
        .unwrap_err();
    assert!(err.message().contains("404"), "{err}");
}

#[tokio::test]
async fn every_redirect_hop_is_checked() {
    let s = server().await;
    // The intranet host is allowed; its redirect to the metadata service is not.
    let loader = UrlLoader::new().allow_address("127.0.0.1".parse().unwrap());
    assert!(loader.load_url(&format!("{}/page", s.uri())).await.is_ok());
    let err = loader
        .load_url(&format!("{}/to-metadata", s.uri()))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("internal address 169.254.169.254"),
        "{err}"
    );
}

#[tokio::test]
async fn size_and_time_limits() {
    let s = server().await;
    let loader = UrlLoader::new().allow_internal(true).with_max_bytes(1000);
    let err = loader
        .load_url(&format!("{}/big", s.uri()))
        .await
        .unwrap_err();
    assert!(err.message().contains("byte limit"), "{err}");
    let err = UrlLoader::new()
        .allow_internal(true)
        .with_timeout(Duration::from_millis(300))
        .load_url(&format!("{}/slow", s.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}
