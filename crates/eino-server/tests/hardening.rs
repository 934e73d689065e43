//! The defects an adversarial probe found (issue 17), each pinned by a test that fails
//! without its fix: work after a client disconnects, oversized requests and traces, slow
//! and silent connections, declared bodies past the limit, plain-text rejections, tenant
//! labels on public metrics, unthrottled failed logins, world-readable data, decompression
//! bombs, documents whose record and chunks disagree, knowledge bases deleted mid-ingestion
//! and unbounded ingestion. Fake models and a fake embedder stand in where the test is
//! about the server's behaviour, not about what a model answers.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{with_keys, TestServer};
use eino::component::{ChatModel, ChatOptions, EmbedOptions, Embedder};
use eino::schema::{Message, StreamReader, ToolInfo};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Streams `tick ` every 5 ms, 2000 times, from its own task; counts what it sent and
/// notes when its reader went away.
#[derive(Clone, Default)]
struct Ticker {
    sent: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

impl ChatModel for Ticker {
    fn generate<'a>(
        &'a self,
        _: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        Box::pin(async { Ok(Message::assistant("tick", vec![])) })
    }

    fn stream<'a>(
        &'a self,
        _: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        let (sent, closed) = (self.sent.clone(), self.closed.clone());
        Box::pin(async move {
            let (w, r) = eino::schema::pipe(4);
            tokio::spawn(async move {
                for _ in 0..2000 {
                    if w.send(Message::assistant("tick ", vec![])).await.is_err() {
                        closed.store(true, Ordering::SeqCst);
                        return;
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            Ok(r)
        })
    }

    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Err(eino::Error::invalid_input("no tools"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_stops_the_run_and_its_model() {
    let cases = [
        (
            "/v1/chat/completions",
            json!({"model": "ticker", "stream": true, "messages": [{"role": "user", "content": "go"}]}),
        ),
        (
            "/api/v1/chat",
            json!({"app": "ticking", "message": "go", "stream": true}),
        ),
    ];
    for (path, body) in cases {
        let ticker = Ticker::default();
        let model = ticker.clone();
        let s = TestServer::start(
            |c| {
                c.models.insert("ticker".into(), common::placeholder());
                c.applications
                    .insert("ticking".into(), common::app("ticker", &[], &[]));
            },
            move |r| r.insert_model("ticker", Arc::new(model)),
        )
        .await;
        let mut resp = s.http.post(s.url(path)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        for _ in 0..3 {
            resp.chunk().await.unwrap().unwrap();
        }
        drop(resp);
        let mut waited = 0;
        while !ticker.closed.load(Ordering::SeqCst) && waited < 100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert!(
            ticker.closed.load(Ordering::SeqCst),
            "{path}: the model still streams {} ms after the client left (sent {})",
            waited * 10,
            ticker.sent.load(Ordering::SeqCst)
        );
        let sent = ticker.sent.load(Ordering::SeqCst);
        assert!(sent < 200, "{path}: {sent} chunks made");
        // The run is recorded as cancelled.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, runs) = s.get("/api/v1/runs").await;
        assert_eq!(runs["data"][0]["status"], "cancelled", "{path}: {runs}");
    }
}

#[tokio::test]
async fn requests_past_the_limits_are_refused_before_any_work() {
    let s = TestServer::start(
        |c| {
            c.limits.max_messages = 10;
            c.limits.max_input_chars = 1000;
            c.limits.max_tools = 2;
        },
        |_| {},
    )
    .await;
    let user = |text: &str| json!({"role": "user", "content": text});
    let chat = |messages: Vec<Value>, tools: Option<Value>| {
        let mut body = json!({"model": "echo", "messages": messages});
        if let Some(t) = tools {
            body["tools"] = t;
        }
        s.post("/v1/chat/completions", body)
    };
    let (status, body) = chat(vec![user("hi"); 11], None).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "request_too_large");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limits.max_messages"));
    let (status, body) = chat(vec![user(&"x".repeat(600)), user(&"y".repeat(600))], None).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limits.max_input_chars"));
    // Text inside content parts counts too.
    let parts = json!([{"type": "text", "text": "z".repeat(1001)}]);
    let (status, _) = chat(vec![json!({"role": "user", "content": parts})], None).await;
    assert_eq!(status, 413);
    let tool =
        json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}});
    let (status, body) = chat(vec![user("hi")], Some(json!([tool, tool, tool]))).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limits.max_tools"));
    let (status, _) = chat(vec![user("hi"); 10], None).await;
    assert_eq!(status, 200, "at the limit is fine");
    let (status, body) = s
        .post("/api/v1/chat", json!({"message": "m".repeat(1001)}))
        .await;
    assert_eq!(status, 413, "{body}");
}

#[tokio::test]
async fn run_traces_are_clipped_and_swept() {
    let s = TestServer::start(
        |c| {
            c.telemetry.runs_max_trace_bytes = 4096;
            c.telemetry.runs_max = 3;
        },
        |_| {},
    )
    .await;
    let long = "w".repeat(1500);
    let messages: Vec<Value> = (0..200)
        .map(|_| json!({"role": "user", "content": long}))
        .collect();
    let r = s
        .http
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model": "assistant", "messages": messages}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let run = r.headers()["x-eino-run-id"].to_str().unwrap().to_string();
    let (_, trace) = s.get(&format!("/api/v1/runs/{run}")).await;
    let nodes = trace["nodes"].to_string();
    assert!(nodes.len() < 8192, "{} bytes stored", nodes.len());
    assert!(nodes.contains("clipped"), "{nodes}");
    assert!(!trace["nodes"].as_array().unwrap().is_empty());
    for i in 0..4 {
        let (status, _) = s
            .post(
                "/v1/chat/completions",
                json!({"model": "echo", "messages": [{"role": "user", "content": format!("r{i}")}]}),
            )
            .await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.state.runs.flush().await;
    let cfg = s.state.config.telemetry.clone();
    let removed = eino_server::runs::sweep(s.state.store.as_ref(), &cfg)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let (_, runs) = s.get("/api/v1/runs").await;
    assert_eq!(runs["data"].as_array().unwrap().len(), 3, "{runs}");
    // Past their time to live, all go.
    let mut ttl = cfg.clone();
    ttl.runs_ttl_secs = 1;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    eino_server::runs::sweep(s.state.store.as_ref(), &ttl)
        .await
        .unwrap();
    let (_, runs) = s.get("/api/v1/runs").await;
    assert_eq!(runs["data"], json!([]));
}

fn addr(s: &TestServer) -> String {
    s.url.trim_start_matches("http://").to_string()
}

/// Read until the peer closes, or fail after `secs`.
async fn read_to_close(c: &mut TcpStream, secs: u64) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(secs), c.read_to_end(&mut out))
        .await
        .expect("the server closed the connection in time")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_connections_are_closed_and_capped() {
    let s = TestServer::start(
        |c| {
            c.server.header_read_timeout_secs = 1;
            c.server.max_connections = 3;
        },
        |_| {},
    )
    .await;
    let a = addr(&s);
    let request = format!("GET /health HTTP/1.1\r\nHost: {a}\r\n\r\n");
    let mut silent = TcpStream::connect(&a).await.unwrap();
    let mut half = TcpStream::connect(&a).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(&a).await.unwrap();
    idle.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // All three slots are taken: a fourth connection waits for one.
    let mut waiting = TcpStream::connect(&a).await.unwrap();
    waiting.write_all(request.as_bytes()).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(400), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "served past server.max_connections");
    // The silent, the half-sent and the idle keep-alive connection are closed.
    for c in [&mut silent, &mut half, &mut idle] {
        read_to_close(c, 5).await;
    }
    // Then the waiting one is served.
    let n = tokio::time::timeout(Duration::from_secs(3), waiting.read(&mut buf))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_declared_body_past_the_limit_is_refused_at_the_header() {
    let s = TestServer::default().await;
    let a = addr(&s);
    let mut c = TcpStream::connect(&a).await.unwrap();
    c.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {a}\r\ncontent-type: application/json\r\n\
             content-length: 104857600\r\n\r\n{{\"model\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("server.max_body_bytes"), "{head}");
}

/// The 413 of a body over the limit reaches a client that is still sending that body:
/// the server closes with a lingering close, not a reset that loses the answer
/// (without it, about one try in three failed with "broken pipe" here).
#[tokio::test]
async fn a_client_still_sending_a_refused_body_reads_the_refusal() {
    let s = TestServer::default().await;
    let big = "x".repeat(5 << 20);
    for _ in 0..10 {
        let r = s
            .http
            .post(s.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"model": "echo", "messages": [{{"role": "user", "content": "{big}"}}]}}"#
            ))
            .send()
            .await
            .expect("the answer, not a reset");
        assert_eq!(r.status(), 413);
    }
}

#[tokio::test]
async fn bad_query_strings_and_paths_answer_json() {
    let s = TestServer::default().await;
    for path in [
        "/api/v1/sessions?limit=abc",
        "/api/v1/runs?limit=-1",
        "/api/v1/sessions/%FF",
        "/api/v1/runs/%FF%FE",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.expect("a JSON body");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{path}");
    }
    let r = s
        .http
        .delete(s.url("/api/v1/knowledge-bases/%FF"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"].is_object());
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address_and_metrics_name_no_tenant() {
    let s = TestServer::start(
        |c| {
            with_keys(c);
            c.limits.auth_failures_per_minute = 5;
            c.limits.requests_per_minute = 60;
            c.limits.burst = 1;
        },
        |_| {},
    )
    .await;
    let call = |key: &'static str| {
        let req = s.http.get(s.url("/v1/models")).bearer_auth(key);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // Rate-limit a tenant once: the public counter must not name it.
    assert_eq!(call("key-of-alice-0123456789").await, 200);
    assert_eq!(call("key-of-alice-0123456789").await, 429);
    for _ in 0..5 {
        assert_eq!(call("wrong-key").await, 401);
    }
    assert_eq!(
        call("wrong-key").await,
        429,
        "the sixth failure is throttled"
    );
    assert_eq!(
        call("key-of-bob-0123456789").await,
        429,
        "a throttled address is not even checked"
    );
    let m = s.metrics().await;
    assert!(m.contains("eino_auth_failures_total"), "{m}");
    assert!(m.contains("eino_auth_throttled_total"), "{m}");
    assert!(m.contains("eino_rate_limited_total"), "{m}");
    assert!(!m.contains("alice"), "a tenant is named in /metrics");
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics_label_space() {
    let s = TestServer::default().await;
    for method in ["BREW", "WHEN", "SIP"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = s.http.request(m, s.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), 405, "{method}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_object());
    }
    let m = s.metrics().await;
    let other: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains(r#"method="OTHER""#))
        .collect();
    assert_eq!(other.len(), 1, "one series for all three: {m}");
    assert!(other[0].ends_with(" 3"), "{other:?}");
    assert!(!m.contains("BREW"), "{m}");
}

#[tokio::test]
async fn a_jwt_subject_is_a_tenant_only_when_configured() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let secret = "another-test-secret-long-enough-0123456789";
    std::env::set_var("EINO_TEST_JWT_SECRET_SUB", secret);
    let s = TestServer::start(
        |c| {
            c.auth.jwt = Some(eino_server::config::JwtConfig {
                secret_env: "EINO_TEST_JWT_SECRET_SUB".into(),
                issuer: None,
                audience: None,
                tenant_claim: None,
                tenant_from_sub: true,
            })
        },
        |_| {},
    )
    .await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = encode(
        &Header::default(),
        &json!({"sub": "acme", "exp": exp}),
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap();
    let r = s
        .http
        .get(s.url("/api/v1/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start(
        |c| c.server.data_dir = c.server.data_dir.join("fresh/data"),
        |_| {},
    )
    .await;
    let dir = s.state.config.server.data_dir.clone();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    if s.pg.is_none() {
        assert_eq!(mode(&dir.join("eino.db")), 0o600);
    }
}

/// Embeds slowly into 8 dimensions from the text's bytes (a fake: these tests are about
/// the ingestion job, not about retrieval quality).
struct SlowEmbedder(Duration);

impl Embedder for SlowEmbedder {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _: &'a EmbedOptions,
    ) -> BoxFuture<'a, eino::Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            tokio::time::sleep(self.0).await;
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.1f32; 8];
                    for (i, b) in t.bytes().enumerate() {
                        v[i % 8] += f32::from(b) / 255.0;
                    }
                    v
                })
                .collect())
        })
    }
}

async fn kb_server(
    delay: Duration,
    tweak: impl FnOnce(&mut eino_server::config::Config),
) -> TestServer {
    TestServer::start(
        |c| {
            c.embedders.insert(
                "minilm".into(),
                eino_server::config::EmbedderConfig::Local {
                    path: None,
                    hub: None,
                },
            );
            tweak(c);
        },
        move |r| {
            r.embedders
                .insert("minilm".into(), Arc::new(SlowEmbedder(delay)));
        },
    )
    .await
}

async fn start_upload(s: &TestServer, kb: &str, files: &[(&str, Vec<u8>)]) -> String {
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in files {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
        );
    }
    let r = s
        .http
        .post(s.url(&format!("/api/v1/knowledge-bases/{kb}/documents")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn finish(s: &TestServer, job: &str) -> Value {
    s.job_done(job, Duration::from_secs(30)).await
}

async fn sources(s: &TestServer, kb: &str) -> Vec<String> {
    let (_, docs) = s
        .get(&format!("/api/v1/knowledge-bases/{kb}/documents"))
        .await;
    let mut out: Vec<String> = docs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

async fn searched(s: &TestServer, kb: &str) -> Vec<String> {
    let (_, hits) = s
        .post(
            &format!("/api/v1/knowledge-bases/{kb}/search"),
            json!({"query": "alpha beta", "top_k": 100, "min_score": -1.0}),
        )
        .await;
    let mut out: Vec<String> = hits["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A one-page PDF whose only stream inflates to `size` zero bytes.
fn pdf_bomb(size: usize) -> Vec<u8> {
    use std::io::Write;
    let mut z = zeros_deflated(size);
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    let mut object = |pdf: &mut Vec<u8>, body: &[u8]| {
        offsets.push(pdf.len());
        let n = offsets.len();
        pdf.extend_from_slice(format!("{n} 0 obj\n").as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    };
    object(&mut pdf, b"<< /Type /Catalog /Pages 2 0 R >>");
    object(&mut pdf, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    object(&mut pdf, b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>");
    let mut stream =
        format!("<< /Length {} /Filter /FlateDecode >>\nstream\n", z.len()).into_bytes();
    stream.append(&mut z);
    stream.extend_from_slice(b"\nendstream");
    object(&mut pdf, &stream);
    let xref = pdf.len();
    write!(pdf, "xref\n0 5\n0000000000 65535 f \n").unwrap();
    for o in offsets {
        writeln!(pdf, "{o:010} 00000 n ").unwrap();
    }
    write!(
        pdf,
        "trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    )
    .unwrap();
    pdf
}

/// A zlib stream of `size` zero bytes (about a thousandth of that in size).
fn zeros_deflated(size: usize) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        z.write_all(&block[..n]).unwrap();
        left -= n;
    }
    z.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_is_bounded_per_file_and_per_tenant() {
    let s = kb_server(Duration::ZERO, |c| {
        c.limits.max_document_inflated_bytes = 8 << 20;
        c.limits.max_chunks_per_document = 3;
        c.limits.max_chunks_per_tenant = 5;
    })
    .await;
    s.post("/api/v1/knowledge-bases", json!({"name": "docs"}))
        .await;
    let bomb = pdf_bomb(256 << 20);
    assert!(bomb.len() < 1 << 20);
    // Many paragraphs: more chunks than a document may have.
    let long: String = (0..40)
        .map(|i| format!("# Part {i}\n\n{}\n\n", "alpha beta gamma ".repeat(60)))
        .collect();
    let job = start_upload(
        &s,
        "docs",
        &[
            ("bomb.pdf", bomb),
            ("long.md", long.into_bytes()),
            ("a.md", b"# A\n\nalpha".to_vec()),
            ("b.md", b"# B\n\nbeta".to_vec()),
        ],
    )
    .await;
    let st = finish(&s, &job).await;
    let outcome = |name: &str| {
        st["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o[0] == name)
            .unwrap_or_else(|| panic!("no outcome for {name}: {st}"))[1]
            .clone()
    };
    assert_eq!(outcome("bomb.pdf")["status"], "failed", "{st}");
    assert!(outcome("bomb.pdf")["error"]
        .as_str()
        .unwrap()
        .contains("inflates to more than"));
    assert_eq!(outcome("long.md")["status"], "failed", "{st}");
    assert!(outcome("long.md")["error"]
        .as_str()
        .unwrap()
        .contains("max_chunks_per_document"));
    assert_eq!(outcome("a.md")["status"], "added");
    assert_eq!(sources(&s, "docs").await, ["a.md", "b.md"]);
    // The tenant holds 2 chunks of 5: a document of 3 fits, then nothing more.
    let three: String = ["One", "Two", "Three"]
        .iter()
        .map(|h| format!("# {h}\n\n{}\n\n", "delta ".repeat(100)))
        .collect();
    let three = three.into_bytes();
    let st = finish(&s, &start_upload(&s, "docs", &[("three.md", three)]).await).await;
    assert_eq!(
        st["outcomes"][0][1],
        json!({"status": "added", "chunks": 3}),
        "{st}"
    );
    let st = finish(
        &s,
        &start_upload(&s, "docs", &[("c.md", b"# C\n\ngamma".to_vec())]).await,
    )
    .await;
    assert_eq!(st["outcomes"][0][1]["status"], "failed", "{st}");
    assert!(st["outcomes"][0][1]["error"]
        .as_str()
        .unwrap()
        .contains("max_chunks_per_tenant"));
    assert_eq!(sources(&s, "docs").await, ["a.md", "b.md", "three.md"]);
    assert_eq!(searched(&s, "docs").await, ["a.md", "b.md", "three.md"]);
}

/// Files of one job go through the ingestor together; the tenant's chunk limit still
/// counts them one by one, and a name uploaded twice is ingested twice, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_ingested_together_keep_the_per_file_rules() {
    let s = kb_server(Duration::ZERO, |c| c.limits.max_chunks_per_tenant = 3).await;
    s.post("/api/v1/knowledge-bases", json!({"name": "docs"}))
        .await;
    let files: Vec<(&str, Vec<u8>)> = ["a.md", "b.md", "a.md", "c.md", "d.md"]
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, format!("# T{i}\n\nalpha {i}").into_bytes()))
        .collect();
    let st = finish(&s, &start_upload(&s, "docs", &files).await).await;
    let statuses: Vec<&str> = st["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o[1]["status"].as_str().unwrap())
        .collect();
    // a.md, b.md; a.md again replaces the first; c.md makes three; d.md is one too many.
    assert_eq!(
        statuses,
        ["added", "added", "replaced", "added", "failed"],
        "{st}"
    );
    assert!(st["outcomes"][4][1]["error"]
        .as_str()
        .unwrap()
        .contains("max_chunks_per_tenant"));
    assert_eq!(sources(&s, "docs").await, ["a.md", "b.md", "c.md"]);
    assert_eq!(st["progress"]["documents_done"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_without_a_record_are_recorded_on_the_next_upload() {
    let s = kb_server(Duration::ZERO, |_| {}).await;
    s.post("/api/v1/knowledge-bases", json!({"name": "docs"}))
        .await;
    let file = ("a.md", b"# A\n\nalpha beta".to_vec());
    finish(
        &s,
        &start_upload(&s, "docs", std::slice::from_ref(&file)).await,
    )
    .await;
    // What a crash between indexing and recording left before: chunks, no record.
    assert!(s
        .state
        .store
        .delete_document("default", "docs", "a.md")
        .await
        .unwrap());
    assert_eq!(searched(&s, "docs").await, ["a.md"]);
    assert!(sources(&s, "docs").await.is_empty());
    let st = finish(&s, &start_upload(&s, "docs", &[file]).await).await;
    assert_eq!(st["outcomes"][0][1]["status"], "added", "{st}");
    assert_eq!(sources(&s, "docs").await, ["a.md"]);
    let r = s
        .http
        .delete(s.url("/api/v1/knowledge-bases/docs/documents/a.md"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(searched(&s, "docs").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_knowledge_base_stops_its_ingestion_and_keeps_nothing() {
    let s = kb_server(Duration::from_millis(300), |_| {}).await;
    s.post("/api/v1/knowledge-bases", json!({"name": "race"}))
        .await;
    // Files go through the ingestor 64 at a time, each window one slow embedding round:
    // 200 files are four windows, and the deletion comes during the second.
    let files: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            (
                format!("f{i}.md"),
                format!("# F{i}\n\nalpha {i}").into_bytes(),
            )
        })
        .collect();
    let named: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let job = start_upload(&s, "race", &named).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = s
        .http
        .delete(s.url("/api/v1/knowledge-bases/race"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let st = finish(&s, &job).await;
    assert_eq!(st["state"], "failed", "{st}");
    s.post("/api/v1/knowledge-bases", json!({"name": "race"}))
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        sources(&s, "race").await.is_empty(),
        "a deleted file is listed"
    );
    assert!(
        searched(&s, "race").await.is_empty(),
        "a deleted file is found"
    );
}

/// Answers after 10 s, noting when its call was dropped unfinished.
#[derive(Clone, Default)]
struct Sleeper {
    dropped: Arc<AtomicBool>,
}

struct NoteDrop(Arc<AtomicBool>, bool);

impl Drop for NoteDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

impl ChatModel for Sleeper {
    fn generate<'a>(
        &'a self,
        _: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        let guard = NoteDrop(self.dropped.clone(), false);
        Box::pin(async move {
            // The whole guard moves into the future (not just the field it sets).
            let mut guard = guard;
            tokio::time::sleep(Duration::from_secs(10)).await;
            guard.1 = true;
            Ok(Message::assistant("late", vec![]))
        })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(StreamReader::once(self.generate(msgs, o).await?)) })
    }

    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Err(eino::Error::invalid_input("no tools"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_a_plain_request_stops_its_model_call() {
    let sleeper = Sleeper::default();
    let model = sleeper.clone();
    let s = TestServer::start(
        |c| {
            c.models.insert("sleeper".into(), common::placeholder());
        },
        move |r| r.insert_model("sleeper", Arc::new(model)),
    )
    .await;
    let body = json!({"model": "sleeper", "messages": [{"role": "user", "content": "hi"}]});
    let gone = s
        .http
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    let mut waited = 0;
    while !sleeper.dropped.load(Ordering::SeqCst) && waited < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert!(
        sleeper.dropped.load(Ordering::SeqCst),
        "the model call still runs after the client left"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, runs) = s.get("/api/v1/runs").await;
    assert_eq!(runs["data"][0]["status"], "cancelled", "{runs}");
}
