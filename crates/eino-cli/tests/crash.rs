//! Crash consistency of `eino serve` (the real binary): chat turns and uploads run while
//! the server is killed with SIGKILL, again and again; after each restart every
//! acknowledged chat turn is still there, and the knowledge base's listing and its index
//! agree: every searchable chunk belongs to a listed document that can be deleted, and
//! every file a finished job reported is listed. The chat model and the embedder are fakes
//! on loopback (the test is about durability, not answers); the embedder is slow so that
//! kills land in the middle of ingestion jobs.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

/// Chat completions and embeddings (8 dimensions from the text's bytes, 150 ms a call).
fn start_upstream() -> String {
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(|| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Json(json!({"id": "x", "object": "chat.completion", "created": 0,
                            "model": "fake", "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "noted"}}]}))
            }),
        )
        .route(
            "/v1/embeddings",
            post(|Json(req): Json<Value>| async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let texts: Vec<String> = match &req["input"] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .map(|v| v.as_str().unwrap_or("").to_string())
                        .collect(),
                    _ => Vec::new(),
                };
                let data: Vec<Value> = texts
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let mut v = vec![0.1f32; 8];
                        for (j, b) in t.bytes().enumerate() {
                            v[j % 8] += f32::from(b) / 255.0;
                        }
                        json!({"object": "embedding", "index": i, "embedding": v})
                    })
                    .collect();
                Json(json!({"object": "list", "data": data, "model": "fake"}))
            }),
        );
    common::serve_router(app)
}

#[derive(Default)]
struct Acked {
    /// (session, user message) of every chat turn answered 200.
    turns: Vec<(String, String)>,
    /// Files a finished job reported as added, replaced or unchanged.
    files: BTreeSet<String>,
}

/// Chat turns in one session until the server goes away.
async fn chat_until_killed(
    http: reqwest::Client,
    url: String,
    acked: Arc<Mutex<Acked>>,
    cycle: usize,
) {
    let mut session: Option<String> = None;
    for i in 0.. {
        let message = format!("cycle {cycle} turn {i}");
        let mut body = json!({"app": "chat", "message": message});
        if let Some(s) = &session {
            body["session_id"] = json!(s);
        }
        let Ok(r) = http
            .post(format!("{url}/api/v1/chat"))
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        let Ok(v) = r.json::<Value>().await else {
            return;
        };
        let Some(sid) = v["session_id"].as_str() else {
            return;
        };
        session = Some(sid.to_string());
        acked.lock().unwrap().turns.push((sid.to_string(), message));
    }
}

/// Uploads of four new files and the previous cycle's files again, each followed to its
/// end, until the server goes away.
async fn upload_until_killed(
    http: reqwest::Client,
    url: String,
    acked: Arc<Mutex<Acked>>,
    cycle: usize,
) {
    for u in 0.. {
        let mut names: Vec<String> = (0..4).map(|i| format!("c{cycle}-u{u}-{i}.md")).collect();
        if cycle > 0 {
            names.extend((0..2).map(|i| format!("c{}-u0-{i}.md", cycle - 1)));
        }
        let mut form = reqwest::multipart::Form::new();
        for n in &names {
            let text = format!("# {n}\n\nalpha beta notes of {n}");
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(text.into_bytes()).file_name(n.clone()),
            );
        }
        let sent = http
            .post(format!("{url}/api/v1/knowledge-bases/kb/documents"))
            .multipart(form)
            .send()
            .await;
        let Ok(r) = sent else { return };
        let Ok(v) = r.json::<Value>().await else {
            return;
        };
        let Some(job) = v["job_id"].as_str() else {
            return;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let Ok(r) = http.get(format!("{url}/api/v1/jobs/{job}")).send().await else {
                return;
            };
            let Ok(st) = r.json::<Value>().await else {
                return;
            };
            if st["state"] == "running" {
                continue;
            }
            let mut a = acked.lock().unwrap();
            for o in st["outcomes"].as_array().into_iter().flatten() {
                if o[1]["status"] != "failed" {
                    a.files.insert(o[0].as_str().unwrap().to_string());
                }
            }
            break;
        }
    }
}

async fn listed(http: &reqwest::Client, url: &str) -> BTreeSet<String> {
    let v: Value = http
        .get(format!("{url}/api/v1/knowledge-bases/kb/documents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap().to_string())
        .collect()
}

/// The sources of every chunk in the index (the fake vectors are close enough that 100
/// nearest with no score floor is all of them).
async fn searchable(http: &reqwest::Client, url: &str) -> BTreeSet<String> {
    let v: Value = http
        .post(format!("{url}/api/v1/knowledge-bases/kb/search"))
        .json(&json!({"query": "alpha beta notes", "top_k": 100, "min_score": -1.0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_chat_turns_and_uploads_loses_nothing_acknowledged() {
    let upstream = start_upstream();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eino.yaml");
    std::fs::write(
        &config,
        format!(
            "models:\n  up: {{ provider: openai, model: fake, base_url: \"{upstream}/v1\", max_retries: 0 }}\n\
             embedders:\n  e: {{ provider: openai, model: fake, base_url: \"{upstream}/v1\" }}\n\
             applications:\n  chat: {{ model: up, embedder: e }}\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    // One database for every restart in the PostgreSQL pass.
    let pg = common::pg::requested().then(common::pg::Postgres::start);
    let mut env = Vec::new();
    if let Some(pg) = &pg {
        env.push(("EINO_STORE__DATABASE_URL", pg.url.as_str()));
    }
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let http = reqwest::Client::new();
    let acked = Arc::new(Mutex::new(Acked::default()));
    for cycle in 0..5 {
        let (mut server, url) = common::serve(&args, &env);
        let _ = http
            .post(format!("{url}/api/v1/knowledge-bases"))
            .json(&json!({"name": "kb"}))
            .send()
            .await
            .unwrap();
        let chat = tokio::spawn(chat_until_killed(
            http.clone(),
            url.clone(),
            acked.clone(),
            cycle,
        ));
        let upload = tokio::spawn(upload_until_killed(
            http.clone(),
            url.clone(),
            acked.clone(),
            cycle,
        ));
        tokio::time::sleep(Duration::from_millis(400 + 230 * cycle as u64)).await;
        server.0.kill().unwrap(); // SIGKILL
        server.0.wait().unwrap();
        chat.await.unwrap();
        upload.await.unwrap();
    }
    let (_server, url) = common::serve(&args, &env);
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.turns.len() > 20, "only {} turns", acked.turns.len());
    assert!(acked.files.len() >= 4, "only {:?}", acked.files);
    for (sid, message) in &acked.turns {
        let v: Value = http
            .get(format!("{url}/api/v1/sessions/{sid}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let messages = v["messages"].as_array().expect("the session exists");
        let at = messages
            .iter()
            .position(|m| m["content"] == message.as_str())
            .unwrap_or_else(|| panic!("acknowledged turn {message:?} lost"));
        assert_eq!(
            messages[at + 1]["role"],
            "assistant",
            "{message}: no answer stored"
        );
    }
    let list = listed(&http, &url).await;
    let found = searchable(&http, &url).await;
    assert!(
        found.is_subset(&list),
        "searchable but not listed: {:?}",
        found.difference(&list)
    );
    assert!(
        acked.files.is_subset(&list),
        "finished but not listed: {:?}",
        acked.files.difference(&list)
    );
    for source in &list {
        let r = http
            .delete(format!(
                "{url}/api/v1/knowledge-bases/kb/documents/{source}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{source}");
    }
    assert!(
        searchable(&http, &url).await.is_empty(),
        "chunks left after deleting every document"
    );
}
