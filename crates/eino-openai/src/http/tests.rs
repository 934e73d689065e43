//! The client against raw TCP servers on loopback: proxies (forwarding and tunnels),
//! timeouts, the answer size limit and configuration checks.

use std::time::Duration;

use eino::ErrorKind;
use futures_util::StreamExt;
use hyper_util::client::proxy::matcher::Matcher;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Http;
use crate::config::OpenAiConfig;

/// Read one request: its head (as text) and its body.
async fn read_request(sock: &mut TcpStream) -> (String, Vec<u8>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "the client hung up mid-request");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let len: usize = text[..end]
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if seen.len() >= end + 4 + len {
            return (
                text[..end].to_string(),
                seen[end + 4..end + 4 + len].to_vec(),
            );
        }
    }
}

fn json_response(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A server answering one request with `answer`; returns its address and the request's
/// head.
async fn serve_once(answer: String) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let (head, _) = read_request(&mut sock).await;
        sock.write_all(answer.as_bytes()).await.unwrap();
        // Keep the connection open until the client is done with it.
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut rest)).await;
        head
    });
    (addr, task)
}

fn config(base: &str) -> OpenAiConfig {
    let mut c = OpenAiConfig::new("m")
        .with_base_url(base)
        .with_max_retries(0);
    c.api_key = Some("sk-test".into());
    c
}

fn no_proxies() -> Matcher {
    Matcher::builder().build()
}

#[tokio::test]
async fn plain_http_goes_through_a_forwarding_proxy_with_its_credentials() {
    let (proxy, seen) = serve_once(json_response(r#"{"ok":true}"#)).await;
    // The server's name does not resolve: only the proxy can reach it.
    let http = Http::with_proxies(
        config("http://model.invalid:8000/v1"),
        &Matcher::builder()
            .http(format!("http://user:secret@{proxy}"))
            .build(),
    )
    .unwrap();
    let v: Value = http
        .post_json("chat/completions", &json!({}))
        .await
        .unwrap();
    assert_eq!(v, json!({"ok": true}));
    drop(http); // closes the pooled connection, so the proxy stops waiting
    let head = seen.await.unwrap();
    assert!(
        head.starts_with("POST http://model.invalid:8000/v1/chat/completions HTTP/1.1\r\n"),
        "absolute form to the proxy: {head}"
    );
    // base64("user:secret")
    assert!(
        head.contains("proxy-authorization: Basic dXNlcjpzZWNyZXQ="),
        "{head}"
    );
    assert!(head.contains("authorization: Bearer sk-test"), "{head}");
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel() {
    let (proxy, seen) =
        serve_once("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n".into()).await;
    let http = Http::with_proxies(
        config("https://model.invalid/v1"),
        &Matcher::builder()
            .https(format!("http://user:secret@{proxy}"))
            .build(),
    )
    .unwrap();
    let e = http
        .post_json::<Value>("chat/completions", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    let head = seen.await.unwrap();
    assert!(
        head.starts_with("CONNECT model.invalid:443 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Proxy-Authorization: Basic dXNlcjpzZWNyZXQ="),
        "{head}"
    );
    // The key never reaches the proxy: it travels inside the tunnel's TLS.
    assert!(!head.contains("sk-test"), "{head}");
}

#[tokio::test]
async fn no_proxy_hosts_are_reached_directly() {
    let (server, _) = serve_once(json_response("[1]")).await;
    let http = Http::with_proxies(
        config(&format!("http://{server}/v1")),
        // A proxy nobody listens on, and the server's host exempted.
        &Matcher::builder()
            .all("http://127.0.0.1:9")
            .no("127.0.0.1")
            .build(),
    )
    .unwrap();
    let v: Value = http.post_json("embeddings", &json!({})).await.unwrap();
    assert_eq!(v, json!([1]));
}

#[test]
fn unsupported_proxies_and_urls_are_refused_at_construction() {
    let socks = Matcher::builder().all("socks5://127.0.0.1:1080").build();
    let e = Http::with_proxies(config("http://h/v1"), &socks).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("only http:// proxies"), "{e}");
    for bad in ["not a url", "ftp://h/v1", "/v1"] {
        let e = Http::with_proxies(config(bad), &no_proxies()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
    }
    let mut c = config("http://h/v1");
    c.headers.push(("bad header".into(), "v".into()));
    let e = Http::with_proxies(c, &no_proxies()).unwrap_err();
    assert!(e.to_string().contains("invalid HTTP header name"), "{e}");
}

#[tokio::test]
async fn a_silent_server_times_out_whole_calls_and_streams() {
    // Headers never come.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            open.push(sock);
        }
    });
    let mut c = config(&format!("http://{addr}/v1"));
    c.timeout = Duration::from_millis(200);
    let http = Http::with_proxies(c, &no_proxies()).unwrap();
    let e = http
        .post_json::<Value>("chat/completions", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");

    let mut c = config(&format!("http://{addr}/v1"));
    c.stream_idle_timeout = Duration::from_millis(200);
    let http = Http::with_proxies(c, &no_proxies()).unwrap();
    let e = http
        .post_stream("chat/completions", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
}

#[tokio::test]
async fn a_stream_that_stalls_ends_with_a_timeout() {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    let event = "data: {}\n\n";
    let (addr, _) = serve_once(format!("{head}{:x}\r\n{event}\r\n", event.len())).await;
    let mut c = config(&format!("http://{addr}/v1"));
    c.stream_idle_timeout = Duration::from_millis(300);
    let http = Http::with_proxies(c, &no_proxies()).unwrap();
    let mut body = http
        .post_stream("chat/completions", &json!({}))
        .await
        .unwrap();
    assert_eq!(&body.next().await.unwrap().unwrap()[..], event.as_bytes());
    let e = body.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(body.next().await.is_none(), "one error, then the end");
}

#[tokio::test]
async fn answers_over_the_size_limit_are_refused() {
    let big = format!("[{}0]", "0,".repeat(2000));
    let (addr, _) = serve_once(json_response(&big)).await;
    let mut c = config(&format!("http://{addr}/v1"));
    c.max_response_bytes = 1000;
    let http = Http::with_proxies(c, &no_proxies()).unwrap();
    let e = http
        .post_json::<Value>("embeddings", &json!({}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("max_response_bytes"), "{e}");
}

#[tokio::test]
async fn query_parameters_and_headers_are_sent() {
    let (addr, seen) = serve_once(json_response("{}")).await;
    let mut c = config(&format!("http://{addr}/openai/deployments/d"));
    c.query.push(("api-version".into(), "2024-10-21".into()));
    c.headers.push(("x-trace".into(), "a b".into()));
    let http = Http::with_proxies(c, &no_proxies()).unwrap();
    let _: Value = http
        .post_json("chat/completions", &json!({}))
        .await
        .unwrap();
    drop(http);
    let head = seen.await.unwrap();
    assert!(
        head.starts_with(
            "POST /openai/deployments/d/chat/completions?api-version=2024-10-21 HTTP/1.1\r\n"
        ),
        "{head}"
    );
    assert!(head.contains("x-trace: a b"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
}

#[tokio::test]
async fn https_servers_get_a_tls_handshake_offering_http2() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hello = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = sock.read(&mut buf).await.unwrap();
        buf.truncate(n);
        buf // then hang up: the handshake fails
    });
    let http = Http::with_proxies(config(&format!("https://{addr}/v1")), &no_proxies()).unwrap();
    let e = http
        .post_json::<Value>("chat/completions", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    let hello = hello.await.unwrap();
    // A TLS handshake record carrying a ClientHello, with ALPN offering h2 and HTTP/1.1.
    assert_eq!(&hello[..2], &[0x16, 0x03], "{hello:?}");
    assert_eq!(hello[5], 0x01, "ClientHello");
    let has = |needle: &[u8]| hello.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"\x02h2"), "ALPN h2");
    assert!(has(b"\x08http/1.1"), "ALPN http/1.1");
}
