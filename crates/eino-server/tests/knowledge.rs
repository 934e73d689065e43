//! Knowledge bases end to end with the real local MiniLM embedder: upload (multipart) →
//! ingestion job with progress → documents → search → the application answers the RAG
//! way with sources; unchanged re-uploads do nothing; tenants are separate; data survives a
//! restart. The chat model is the echo fake (the test is about retrieval and routing).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{minilm, TestServer};
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../eino-rag/tests/fixtures/docs")
        .join(name);
    std::fs::read(p).unwrap()
}

/// A server with the real embedder; `dir` and `database` keep the data of an earlier one.
async fn server(dir: Option<std::path::PathBuf>, database: Option<String>) -> TestServer {
    let e = minilm().await;
    TestServer::start(
        move |c| {
            c.applications
                .insert("assistant".into(), common::app("echo", &[], &["*"]));
            c.embedders.insert(
                "minilm".into(),
                eino_server::config::EmbedderConfig::Local {
                    path: None,
                    hub: None,
                },
            );
            if let Some(d) = dir {
                c.server.data_dir = d;
            }
            if database.is_some() {
                c.store.database_url = database;
            }
        },
        move |r| {
            r.embedders.insert("minilm".into(), e);
        },
    )
    .await
}

async fn upload(s: &TestServer, kb: &str, files: &[&str]) -> Value {
    let mut form = reqwest::multipart::Form::new();
    for f in files {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(fixture(f))
                .file_name(f.rsplit('/').next().unwrap().to_string()),
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
    let job = r.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.job_done(&job, Duration::from_secs(10)).await
}

#[tokio::test]
async fn upload_search_answer_with_sources_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = server(Some(dir.path().to_path_buf()), None).await;
    assert_eq!(
        s.post("/api/v1/knowledge-bases", json!({"name": "docs"}))
            .await
            .0,
        201
    );
    assert_eq!(
        s.post("/api/v1/knowledge-bases", json!({"name": "docs"}))
            .await
            .0,
        409
    );
    assert_eq!(
        s.post("/api/v1/knowledge-bases", json!({"name": "bad name!"}))
            .await
            .0,
        400
    );

    let st = upload(
        &s,
        "docs",
        &[
            "rust.md",
            "nested/page.html",
            "report.docx",
            "truncated.docx",
        ],
    )
    .await;
    assert_eq!(st["state"], "done", "{st}");
    let outcomes: Vec<(String, String)> = st["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o[0].as_str().unwrap().to_string(),
                o[1]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        outcomes.contains(&("truncated.docx".into(), "failed".into())),
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|(_, s)| s == "added").count(), 3);
    // Every uploaded file counts, the one that failed to parse too.
    assert_eq!(st["progress"]["documents_done"], 4);
    assert_eq!(st["progress"]["documents_total"], 4);
    // The dashboard's ingestion panels (counters are process-wide: other tests add to them).
    let metrics = s.metrics().await;
    for line in [
        r#"eino_ingest_jobs_total{state="done"}"#,
        r#"eino_ingest_documents_total{outcome="added"}"#,
        r#"eino_ingest_documents_total{outcome="failed"}"#,
        "eino_ingest_chunks_total",
        "eino_ingest_jobs_running",
    ] {
        assert!(metrics.contains(line), "{line} missing in:\n{metrics}");
    }
    assert_eq!(
        st["progress"]["chunks_done"],
        st["progress"]["chunks_total"]
    );

    let (_, docs) = s.get("/api/v1/knowledge-bases/docs/documents").await;
    let names: Vec<&str> = docs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["page.html", "report.docx", "rust.md"]);

    let (_, hits) = s
        .post(
            "/api/v1/knowledge-bases/docs/search",
            json!({"query": "Which city is the capital of Germany?", "top_k": 2}),
        )
        .await;
    assert_eq!(hits["data"][0]["source"], "page.html", "{hits}");

    // The application takes the RAG route and returns its sources.
    let (_, answer) = s
        .post(
            "/api/v1/chat",
            json!({"message": "What does Cargo do in Rust?"}),
        )
        .await;
    assert!(
        answer["message"]["content"]
            .as_str()
            .unwrap()
            .ends_with("[rag]"),
        "{answer}"
    );
    assert_eq!(answer["sources"][0]["source"], "rust.md");
    let (_, run) = s
        .get(&format!(
            "/api/v1/runs/{}",
            answer["run_id"].as_str().unwrap()
        ))
        .await;
    let names: Vec<String> = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "rag"), "{names:?}");
    // An unrelated question goes the plain-chat way.
    let (_, plain) = s
        .post("/api/v1/chat", json!({"message": "zzzz qqqq"}))
        .await;
    assert!(
        !plain["message"]["content"]
            .as_str()
            .unwrap()
            .ends_with("[rag]"),
        "{plain}"
    );

    // The chunks are in the keyword (BM25) index too, under the data dir; in the
    // PostgreSQL pass both sides are in the database instead.
    let in_database = s.pg.is_some();
    let keyword_collections = || -> Vec<String> {
        std::fs::read_dir(dir.path().join("keywords"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with("__docs.bm25"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(keyword_collections().len(), usize::from(!in_database));

    // Re-uploading the same file does nothing.
    let again = upload(&s, "docs", &["rust.md"]).await;
    assert_eq!(again["outcomes"][0][1]["status"], "unchanged", "{again}");

    // Another tenant does not see the knowledge base (no auth here: tenants come from
    // keys, tested in native_api; the store query is per tenant, checked in its unit tests).
    let session = plain["session_id"].as_str().unwrap().to_string();
    // In the PostgreSQL pass the database outlives the first server.
    let pg = s.pg.take();
    let database = pg.as_ref().map(|p| p.url.clone());
    drop(s);

    // A new process on the same data dir keeps the knowledge base, its chunks and sessions.
    let s = server(Some(dir.path().to_path_buf()), database).await;
    let (_, hits) = s
        .post(
            "/api/v1/knowledge-bases/docs/search",
            json!({"query": "Cargo build tool"}),
        )
        .await;
    assert_eq!(hits["data"][0]["source"], "rust.md", "{hits}");
    assert_eq!(s.get(&format!("/api/v1/sessions/{session}")).await.0, 200);

    // Delete a document, then the knowledge base.
    let r = s
        .http
        .delete(s.url("/api/v1/knowledge-bases/docs/documents/rust.md"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, hits) = s
        .post(
            "/api/v1/knowledge-bases/docs/search",
            json!({"query": "Cargo build tool"}),
        )
        .await;
    assert!(hits["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["source"] != "rust.md"));
    assert_eq!(
        s.http
            .delete(s.url("/api/v1/knowledge-bases/docs"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(s.get("/api/v1/knowledge-bases/docs/documents").await.0, 404);
    assert!(
        keyword_collections().is_empty(),
        "dropped from the keyword index too"
    );
}

#[tokio::test]
async fn upload_errors_are_json_4xx() {
    let s = server(None, None).await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("a.txt"),
    );
    let r = s
        .http
        .post(s.url("/api/v1/knowledge-bases/missing/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.post("/api/v1/knowledge-bases", json!({"name": "k"}))
        .await;
    let form = reqwest::multipart::Form::new().text("note", "no file");
    let r = s
        .http
        .post(s.url("/api/v1/knowledge-bases/k/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .post(s.url("/api/v1/knowledge-bases/k/documents"))
        .body("not multipart")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
    assert_eq!(s.get("/api/v1/jobs/nope").await.0, 404);
}

#[tokio::test]
async fn a_knowledge_search_tool_reads_the_callers_knowledge_bases() {
    use eino_server::config::AgentKind;
    use eino_server::config::{KnowledgeSearchConfig, ToolConfig};
    let e = minilm().await;
    let model = common::agent::ToolUser::default();
    let s = TestServer::start(
        |c| {
            c.embedders.insert(
                "minilm".into(),
                eino_server::config::EmbedderConfig::Local {
                    path: None,
                    hub: None,
                },
            );
            c.models.insert("tooluser".into(), c.models["echo"].clone());
            c.tools.insert(
                "docs".into(),
                ToolConfig {
                    description: "Search the user's documents".into(),
                    parameters: None,
                    approval: false,
                    http: None,
                    knowledge_search: Some(KnowledgeSearchConfig {
                        knowledge_bases: vec!["*".into()],
                        top_k: 2,
                    }),
                    mcp: None,
                    allow: Vec::new(),
                },
            );
            let mut app = common::app("tooluser", &[], &[]);
            app.agent = AgentKind::React;
            app.tools = vec!["docs".into()];
            c.applications.insert("researcher".into(), app);
        },
        move |r| {
            r.embedders.insert("minilm".into(), e);
            r.insert_model("tooluser", Arc::new(model));
        },
    )
    .await;
    s.post("/api/v1/knowledge-bases", json!({"name": "kb"}))
        .await;
    let st = upload(&s, "kb", &["nested/page.html", "rust.md"]).await;
    assert_eq!(st["state"], "done", "{st}");
    let (status, out) = s
        .post(
            "/api/v1/chat",
            json!({"app": "researcher", "message": "docs which city is the capital of Germany?"}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let text = out["message"]["content"].as_str().unwrap();
    assert!(text.starts_with("tool said: [1] (page.html)"), "{text}");
    assert!(text.contains("Berlin"), "{text}");
}

/// Two replicas (own data dirs, one PostgreSQL): what one ingests the other searches and
/// answers from, a job started on one is polled and streamed on the other, and a document
/// deleted through one is gone for both.
#[tokio::test]
async fn replicas_on_one_database_share_knowledge_bases() {
    let pg = tokio::task::spawn_blocking(common::pg::Postgres::start)
        .await
        .unwrap();
    let a = server(None, Some(pg.url.clone())).await;
    let b = server(None, Some(pg.url.clone())).await;
    assert_eq!(
        a.post("/api/v1/knowledge-bases", json!({"name": "docs"}))
            .await
            .0,
        201
    );
    // Started on a, followed on b (its status comes from the store).
    let started = a
        .http
        .post(a.url("/api/v1/knowledge-bases/docs/documents"))
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(fixture("rust.md")).file_name("rust.md"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let job = started.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let events = b.get_text(&format!("/api/v1/jobs/{job}/events")).await;
    let events = common::sse(&events);
    let (last_name, last) = events.last().unwrap();
    assert_eq!(last_name, "done", "{events:?}");
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["outcomes"][0][1]["status"], "added", "{last}");
    let (status, polled) = b.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(
        (status, &polled["state"]),
        (200, &json!("done")),
        "{polled}"
    );

    // b searches and answers from what a ingested; no replica holds the chunks itself.
    let (_, hits) = b
        .post(
            "/api/v1/knowledge-bases/docs/search",
            json!({"query": "Cargo build tool", "top_k": 2}),
        )
        .await;
    assert_eq!(hits["data"][0]["source"], "rust.md", "{hits}");
    let (_, answer) = b
        .post(
            "/api/v1/chat",
            json!({"message": "What does Cargo do in Rust?"}),
        )
        .await;
    assert_eq!(answer["sources"][0]["source"], "rust.md", "{answer}");
    for s in [&a, &b] {
        assert!(!s.dir.path().join("index").join("docs").exists());
        let local = std::fs::read_dir(s.dir.path().join("keywords"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(local, 0, "no keyword index under a replica's data dir");
    }
    // Re-uploading through b sees a's chunks: unchanged.
    let again = upload(&b, "docs", &["rust.md"]).await;
    assert_eq!(again["outcomes"][0][1]["status"], "unchanged", "{again}");

    // Deleted through b, gone for a.
    let r = b
        .http
        .delete(b.url("/api/v1/knowledge-bases/docs/documents/rust.md"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, hits) = a
        .post(
            "/api/v1/knowledge-bases/docs/search",
            json!({"query": "Cargo build tool"}),
        )
        .await;
    assert_eq!(hits["data"], json!([]), "{hits}");
    // Another tenant's job is not found on either replica.
    assert_eq!(a.get("/api/v1/jobs/no-such-job").await.0, 404);
}

/// A job recorded as running whose replica stopped writing it (no heartbeat for half a
/// minute) reads as failed, polled or streamed, instead of running forever.
#[tokio::test]
async fn a_job_whose_replica_stopped_reads_as_failed() {
    let s = server(None, None).await;
    let orphan = eino_server::store::JobStatus {
        id: "orphan".into(),
        kb: "docs".into(),
        state: "running".into(),
        progress: Default::default(),
        outcomes: Vec::new(),
        error: None,
        updated_at: eino_server::store::now_ms() - 60_000,
    };
    s.state.store.put_job("default", &orphan).await.unwrap();
    let (status, job) = s.get("/api/v1/jobs/orphan").await;
    assert_eq!((status, &job["state"]), (200, &json!("failed")), "{job}");
    assert!(job["error"].as_str().unwrap().contains("stopped"), "{job}");
    let events = common::sse(&s.get_text("/api/v1/jobs/orphan/events").await);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "done");
    // A fresh one is still running.
    let live = eino_server::store::JobStatus {
        id: "live".into(),
        updated_at: eino_server::store::now_ms(),
        ..orphan
    };
    s.state.store.put_job("default", &live).await.unwrap();
    assert_eq!(s.get("/api/v1/jobs/live").await.1["state"], "running");
}
