//! The HTTP client's connection pool stays bounded: after a burst of concurrent calls at
//! most `pool_max_idle_per_host` connections stay open, and those close once idle for
//! `pool_idle_timeout` (a burst of a thousand streams once left a thousand idle sockets
//! to the upstream). The upstream is a raw TCP server on loopback that counts them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eino::component::{ChatModel, ChatOptions};
use eino::schema::Message;
use eino_openai::{OpenAiChatModel, OpenAiConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream answering every request with one completion, keeping connections alive;
/// the count is of connections open now.
async fn upstream(open: Arc<AtomicUsize>, peak: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let open = open.clone();
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::spawn(async move {
                let body = r#"{"id":"x","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#;
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                loop {
                    let n = match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    seen.extend_from_slice(&buf[..n]);
                    // One request: its head and a JSON body ending in `}`.
                    let text = String::from_utf8_lossy(&seen);
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len: usize = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        if seen.len() >= head_end + 4 + len {
                            seen.clear();
                            // Let the calls overlap, so each needs its own connection.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if tcp.write_all(resp.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_capped_and_closed() {
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let url = upstream(open.clone(), peak.clone()).await;
    let mut cfg = OpenAiConfig::new("m").with_base_url(url);
    cfg.pool_idle_timeout = Duration::from_millis(500);
    cfg.pool_max_idle_per_host = 2;
    let model = Arc::new(OpenAiChatModel::new(cfg).unwrap());
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let m = model.clone();
            tokio::spawn(async move {
                m.generate(&[Message::user("hi")], &ChatOptions::default())
                    .await
                    .unwrap()
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().content, "ok");
    }
    assert!(peak.load(Ordering::SeqCst) >= 4, "the calls overlapped");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kept = open.load(Ordering::SeqCst);
    assert!(kept <= 2, "{kept} idle connections kept, more than the cap");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        open.load(Ordering::SeqCst),
        0,
        "idle connections were not closed"
    );
}

/// A connection pool per tokio runtime: a call from another runtime opens its own
/// connection instead of borrowing one driven by the first runtime's thread, and once
/// that runtime ends, the first one's connection still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_runtime_has_its_own_connections() {
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let url = upstream(open.clone(), peak.clone()).await;
    let model = Arc::new(OpenAiChatModel::new(OpenAiConfig::new("m").with_base_url(url)).unwrap());
    async fn call(m: Arc<OpenAiChatModel>) -> String {
        m.generate(&[Message::user("hi")], &ChatOptions::default())
            .await
            .unwrap()
            .content
    }
    assert_eq!(call(model.clone()).await, "ok");
    assert_eq!(open.load(Ordering::SeqCst), 1);
    let (m, o) = (model.clone(), open.clone());
    let other = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let content = rt.block_on(call(m));
        (content, o.load(Ordering::SeqCst))
    });
    let (content, open_then) = tokio::task::spawn_blocking(move || other.join().unwrap())
        .await
        .unwrap();
    assert_eq!(content, "ok");
    assert_eq!(
        open_then, 2,
        "the second runtime borrowed the first one's connection"
    );
    // The second runtime ended and its connection with it; the first one's still serves.
    for _ in 0..100 {
        if open.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open.load(Ordering::SeqCst), 1);
    assert_eq!(call(model.clone()).await, "ok");
    assert_eq!(
        open.load(Ordering::SeqCst),
        1,
        "the first runtime's connection was reused"
    );
}
