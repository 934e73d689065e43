//! One contract for every store, run against SQLite and against a real PostgreSQL that
//! the test starts itself (see common/pg.rs).

use std::sync::Arc;

mod common;

use common::pg::Postgres;
use eino::schema::Message;
use eino_rag::ingest::{Outcome, Progress};
use eino_rag::{ChunkQuery, ChunkStore};
use eino_server::store::{
    InterruptedRun, JobStatus, KbDocument, PendingCall, PostgresStore, RunRecord, RunRow,
    SqliteStore, Store,
};

async fn sessions_are_per_tenant_and_turns_atomic(s: &dyn Store) {
    let a = s.create_session("t1", "assistant").await.unwrap();
    s.append_turn(
        "t1",
        &a.id,
        &[
            Message::user("hello there"),
            Message::assistant("hi", vec![]),
        ],
    )
    .await
    .unwrap();
    assert_eq!(s.messages("t1", &a.id, 10).await.unwrap().len(), 2);
    assert_eq!(s.messages("t1", &a.id, 1).await.unwrap()[0].content, "hi");
    let info = s.session("t1", &a.id).await.unwrap().unwrap();
    assert_eq!((info.title.as_str(), info.messages), ("hello there", 2));
    assert!(s.session("t2", &a.id).await.unwrap().is_none());
    assert!(s.list_sessions("t2", 10).await.unwrap().is_empty());
    assert!(s
        .append_turn("t2", &a.id, &[Message::user("x")])
        .await
        .is_err());
    assert!(!s.delete_session("t2", &a.id).await.unwrap());
    assert_eq!(s.messages("t1", &a.id, 10).await.unwrap().len(), 2);
    // Concurrent turns of one session get distinct positions, none is lost.
    let turns = (0..8).map(|i| {
        let id = a.id.clone();
        async move {
            s.append_turn(
                "t1",
                &id,
                &[
                    Message::user(format!("q{i}")),
                    Message::assistant("a", vec![]),
                ],
            )
            .await
        }
    });
    for r in futures_util::future::join_all(turns).await {
        r.unwrap();
    }
    assert_eq!(s.messages("t1", &a.id, 100).await.unwrap().len(), 18);
    let b = s.create_session("t1", "assistant").await.unwrap();
    s.append_turn("t1", &b.id, &[Message::user("later")])
        .await
        .unwrap();
    let list = s.list_sessions("t1", 10).await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(s.delete_session("t1", &a.id).await.unwrap());
    assert!(s.messages("t1", &a.id, 10).await.unwrap().is_empty());
}

async fn knowledge_bases_and_documents(s: &dyn Store) {
    assert!(s.create_kb("t", "docs").await.unwrap());
    assert!(!s.create_kb("t", "docs").await.unwrap());
    let doc = KbDocument {
        source: "a.md".into(),
        content_hash: "h".into(),
        chunks: 3,
        bytes: 10,
        updated_at: 1,
    };
    s.put_document("t", "docs", &doc).await.unwrap();
    s.put_document(
        "t",
        "docs",
        &KbDocument {
            chunks: 4,
            ..doc.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.list_documents("t", "docs").await.unwrap()[0].chunks, 4);
    assert_eq!(s.list_kbs("t").await.unwrap()[0].documents, 1);
    assert!(s.list_kbs("u").await.unwrap().is_empty());
    assert!(
        s.put_document("t", "nope", &doc).await.is_err(),
        "unknown kb refused"
    );
    assert!(!s.delete_document("u", "docs", "a.md").await.unwrap());
    assert!(s.delete_kb("t", "docs").await.unwrap());
    assert!(s.list_documents("t", "docs").await.unwrap().is_empty());
}

async fn runs_in_batches(s: &dyn Store) {
    let run = |id: &str, at: i64| RunRecord {
        id: id.into(),
        app: "a".into(),
        session_id: None,
        status: "ok".into(),
        started_at: at,
        duration_ms: 3,
        prompt_tokens: 1,
        completion_tokens: 2,
        nodes: serde_json::json!([{"name": "model"}]),
        error: None,
    };
    let rows = [
        ("t", run("r1", 1)),
        ("t", run("r2", 2)),
        ("u", run("r3", 3)),
    ]
    .iter()
    .map(|(tenant, r)| RunRow::new(tenant, r).unwrap())
    .collect::<Vec<_>>();
    s.put_runs(rows).await.unwrap();
    let ids: Vec<String> = s
        .list_runs("t", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r2", "r1"]);
    assert!(s.run("u", "r1").await.unwrap().is_none());
    assert_eq!(
        s.run("t", "r1").await.unwrap().unwrap().nodes[0]["name"],
        "model"
    );
    s.ping().await.unwrap();
}

async fn interrupted_runs_are_claimed_once(s: &dyn Store) {
    let waiting = |id: &str, at: i64| InterruptedRun {
        id: id.into(),
        app: "agent".into(),
        session_id: Some("s1".into()),
        user_message: Some(Message::user("pay")),
        created_at: at,
        pending: vec![PendingCall {
            call_id: "call_0".into(),
            tool: "pay".into(),
            arguments: serde_json::json!({"invoice": "inv-7"}),
            path: vec!["agent".into(), "tools".into()],
        }],
    };
    s.put_interrupted("t", &waiting("i1", 1)).await.unwrap();
    s.put_interrupted("t", &waiting("i2", 2)).await.unwrap();
    s.put_interrupted("u", &waiting("i3", 3)).await.unwrap();
    // Replacing keeps one row.
    s.put_interrupted("t", &waiting("i1", 4)).await.unwrap();
    let ids: Vec<String> = s
        .list_interrupted("t", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["i1", "i2"]);
    assert_eq!(
        s.interrupted("t", "i2").await.unwrap(),
        Some(waiting("i2", 2))
    );
    assert!(s.interrupted("u", "i2").await.unwrap().is_none());
    assert!(s.take_interrupted("u", "i2").await.unwrap().is_none());
    // Of concurrent claims exactly one wins.
    let claims =
        futures_util::future::join_all((0..6).map(|_| s.take_interrupted("t", "i2"))).await;
    let won = claims
        .into_iter()
        .filter(|c| matches!(c, Ok(Some(_))))
        .count();
    assert_eq!(won, 1);
    assert!(s.interrupted("t", "i2").await.unwrap().is_none());
    // Expiry: every tenant's runs recorded before the cut-off, and only those.
    assert_eq!(s.expire_interrupted(4).await.unwrap(), ["i3"]);
    assert!(s.list_interrupted("u", 10).await.unwrap().is_empty());
    assert_eq!(s.list_interrupted("t", 10).await.unwrap().len(), 1);
    assert_eq!(s.expire_interrupted(5).await.unwrap(), ["i1"]);
    assert!(s.expire_interrupted(5).await.unwrap().is_empty());
}

async fn jobs_are_per_tenant_and_expire(s: &dyn Store) {
    let mut job = JobStatus {
        id: "j1".into(),
        kb: "docs".into(),
        state: "running".into(),
        progress: Progress::default(),
        outcomes: Vec::new(),
        error: None,
        updated_at: 7,
    };
    s.put_job("t", &job).await.unwrap();
    job.state = "done".into();
    job.progress.documents_done = 1;
    job.outcomes = vec![("a.md".into(), Outcome::Added { chunks: 2 })];
    s.put_job("t", &job).await.unwrap();
    assert_eq!(s.job("t", "j1").await.unwrap(), Some(job.clone()));
    assert_eq!(
        s.job("u", "j1").await.unwrap(),
        None,
        "another tenant's job"
    );
    let future = eino_server::store::now_ms() + 60_000;
    assert_eq!(s.expire_jobs(future).await.unwrap(), 1);
    assert_eq!(s.job("t", "j1").await.unwrap(), None);
}

async fn contract(s: &dyn Store) {
    sessions_are_per_tenant_and_turns_atomic(s).await;
    knowledge_bases_and_documents(s).await;
    runs_in_batches(s).await;
    interrupted_runs_are_claimed_once(s).await;
    jobs_are_per_tenant_and_expire(s).await;
}

#[tokio::test]
async fn sqlite_passes_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eino.db");
    contract(&SqliteStore::open(&path).unwrap()).await;
    // Reopening runs no migration twice and keeps the data.
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.list_sessions("t1", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn postgres_passes_the_store_contract() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let store = PostgresStore::connect(&pg.url, 8).await.unwrap();
    contract(&store).await;
    // A second connection (another replica) runs no migration twice and sees the data.
    let again: Arc<dyn Store> = Arc::new(PostgresStore::connect(&pg.url, 2).await.unwrap());
    assert_eq!(again.list_sessions("t1", 10).await.unwrap().len(), 1);
    // A bad URL is a clear error.
    let err = PostgresStore::connect("postgres://nobody@127.0.0.1:1/none", 1)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "connection refused is transient: {err}");
}

#[tokio::test]
async fn the_server_keeps_sessions_in_postgres() {
    use serde_json::json;
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.url.clone();
    // With the chunks kept in-process, the database gets no chunk table (nor needs pgvector).
    let s = common::TestServer::start(
        move |c| {
            c.store.database_url = Some(url);
            c.store.chunks_in_database = false;
        },
        |_| {},
    )
    .await;
    let (status, first) = s.post("/api/v1/chat", json!({"message": "hello"})).await;
    assert_eq!(status, 200, "{first}");
    let sid = first["session_id"].as_str().unwrap();
    let (_, second) = s
        .post(
            "/api/v1/chat",
            json!({"message": "again", "session_id": sid}),
        )
        .await;
    assert_eq!(second["message"]["content"], "echo(4): again");
    let (_, runs) = s.get("/api/v1/runs").await;
    assert_eq!(runs["data"].as_array().unwrap().len(), 2);
    // The rows are in PostgreSQL, not in the data dir's SQLite file.
    let direct = PostgresStore::connect(&pg.url, 1).await.unwrap();
    assert_eq!(direct.messages("default", sid, 10).await.unwrap().len(), 4);
    let (client, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT to_regclass('eino_chunks') IS NULL", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "no eino_chunks table");
}

#[tokio::test]
async fn approvals_interrupt_and_resume_runs_in_postgres() {
    use common::agent::{approval_flow, server, ToolUser, Webhooks};
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.url.clone();
    let hooks = Webhooks::start().await;
    let model = ToolUser::default();
    let s = server(&hooks, &model, move |c| c.store.database_url = Some(url)).await;
    approval_flow(&s, &hooks, &model).await;
    // The checkpoints were in PostgreSQL: another replica (a second server on the same
    // database) resumes a run the first one interrupted.
    let (_, out) = s
        .post(
            "/api/v1/chat",
            serde_json::json!({"app": "agent", "message": "pay"}),
        )
        .await;
    let id = out["run_id"].as_str().unwrap().to_string();
    use eino::compose::CheckpointStore;
    let db = eino_postgres::Postgres::connect(&pg.url, 1).await.unwrap();
    let direct = eino_postgres::PostgresCheckpointStore::open(db)
        .await
        .unwrap();
    assert!(direct.list().await.unwrap().contains(&id));
    let url = pg.url.clone();
    let other = server(&hooks, &model, move |c| c.store.database_url = Some(url)).await;
    let (status, done) = other
        .post(
            &format!("/api/v1/runs/{id}/resume"),
            serde_json::json!({"decisions": {"call_0": {"approved": true}}}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["message"]["content"], "tool said: paid inv-7");
    assert!(!direct.list().await.unwrap().contains(&id));
}

fn chunk(id: &str, source: &str, text: &str) -> eino::schema::Document {
    let mut d = eino::schema::Document::new(id, text);
    d.metadata.insert("source".into(), source.into());
    d.metadata
        .insert("content_hash".into(), format!("hash-of-{source}").into());
    d
}

/// The chunk store in PostgreSQL keeps the in-process one's contract: sources replaced as
/// a whole, hashes read back, cosine scores with a floor, keyword matches on any word, one
/// embedding size per collection, collections apart.
#[tokio::test]
async fn postgres_keeps_chunks_with_vectors_and_keywords() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let store = PostgresStore::connect(&pg.url, 4).await.unwrap();
    let chunks = store.chunks().await.unwrap();
    // A second replica's start creates nothing twice.
    PostgresStore::connect(&pg.url, 1)
        .await
        .unwrap()
        .chunks()
        .await
        .unwrap();
    assert!(chunks.is_empty("kb").await.unwrap());
    assert_eq!(chunks.source_hash("kb", "a.md").await.unwrap(), None);
    let a = vec![
        (
            chunk("a1", "a.md", "Cargo builds Rust crates"),
            vec![1.0, 0.0],
        ),
        (chunk("a2", "a.md", "The borrow checker"), vec![0.0, 1.0]),
    ];
    assert_eq!(chunks.replace_source("kb", "a.md", a).await.unwrap(), 0);
    let b = vec![(chunk("b1", "b.md", "Berlin is a city"), vec![1.0, 1.0])];
    chunks.replace_source("kb", "b.md", b).await.unwrap();
    let other = vec![(chunk("x1", "a.md", "Cargo elsewhere"), vec![1.0, 0.0, 0.0])];
    chunks.replace_source("other", "a.md", other).await.unwrap();
    assert_eq!(
        chunks.source_hash("kb", "a.md").await.unwrap().as_deref(),
        Some("hash-of-a.md")
    );

    let hits = chunks
        .search("kb", ChunkQuery::new(&[1.0, 0.0], 5))
        .await
        .unwrap();
    let ids: Vec<_> = hits.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["a1", "b1", "a2"]);
    assert!(
        (hits[0].score.unwrap() - 1.0).abs() < 1e-6,
        "cosine similarity"
    );
    assert_eq!(hits[0].metadata["source"], "a.md");
    let strict = chunks
        .search(
            "kb",
            ChunkQuery::new(&[1.0, 0.0], 5).with_min_score(Some(0.5)),
        )
        .await
        .unwrap();
    assert_eq!(strict.len(), 2, "min_score is a cosine floor");
    // Metadata filters, with the in-process index's meaning: equality, $in, $ne.
    let filtered = |filter: serde_json::Value| {
        let chunks = &chunks;
        async move {
            let q = [1.0, 0.0];
            let hits = chunks
                .search("kb", ChunkQuery::new(&q, 5).with_filter(Some(&filter)))
                .await
                .unwrap();
            hits.into_iter().map(|d| d.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        filtered(serde_json::json!({"source": "b.md"})).await,
        ["b1"]
    );
    assert_eq!(
        filtered(serde_json::json!({"source": {"$in": ["a.md", "zz.md"]}})).await,
        ["a1", "a2"]
    );
    assert_eq!(
        filtered(serde_json::json!({"source": {"$ne": "a.md"}})).await,
        ["b1"]
    );
    // Upserts add or replace by id (what an eino Indexer does).
    let up = |text: &str| vec![(chunk("u1", "u.md", text), vec![0.6, 0.8])];
    chunks.upsert("kb", up("first")).await.unwrap();
    chunks.upsert("kb", up("second")).await.unwrap();
    let u = chunks
        .search(
            "kb",
            ChunkQuery::new(&[0.6, 0.8], 5)
                .with_filter(Some(&serde_json::json!({"source": "u.md"}))),
        )
        .await
        .unwrap();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].content, "second");
    assert_eq!(
        chunks
            .replace_source("kb", "u.md", Vec::new())
            .await
            .unwrap(),
        1
    );

    let words = chunks
        .keyword_search("kb", "how does cargo build?", 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(words.len(), 1, "stemmed, any word: {words:?}");
    assert_eq!(words[0].id, "a1");
    let none = chunks.keyword_search("kb", "\"-) |&!", 5).await.unwrap();
    assert_eq!(
        none,
        Some(Vec::new()),
        "punctuation is no query, never an error"
    );

    // A wrong embedding size is refused, on write and on search.
    let wrong = vec![(chunk("c1", "c.md", "c"), vec![1.0, 0.0, 0.0])];
    let err = chunks
        .replace_source("kb", "c.md", wrong)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), eino::ErrorKind::InvalidInput, "{err}");
    let err = chunks
        .search("kb", ChunkQuery::new(&[1.0, 0.0, 0.0], 5))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), eino::ErrorKind::InvalidInput, "{err}");

    // Replacing a source removes its old chunks, in one transaction.
    let a = vec![(chunk("a3", "a.md", "Cargo again"), vec![1.0, 0.1])];
    assert_eq!(chunks.replace_source("kb", "a.md", a).await.unwrap(), 2);
    let hits = chunks
        .search("kb", ChunkQuery::new(&[1.0, 0.0], 5))
        .await
        .unwrap();
    let ids: Vec<_> = hits.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["a3", "b1"]);
    assert_eq!(
        chunks
            .replace_source("kb", "a.md", Vec::new())
            .await
            .unwrap(),
        1
    );
    assert!(chunks.drop_collection("kb").await.unwrap());
    assert!(chunks.is_empty("kb").await.unwrap());
    assert!(
        !chunks.is_empty("other").await.unwrap(),
        "other collections stay"
    );
}

/// Past a few thousand chunks a search walks the HNSW index of its vector size (the
/// statistics are refreshed by the writes, so the planner knows the table is big) and still
/// finds the nearest chunks; a small knowledge base in the same table still fills its limit.
#[tokio::test]
async fn postgres_searches_large_knowledge_bases_through_hnsw() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let store = PostgresStore::connect(&pg.url, 4).await.unwrap();
    let chunks = store.chunks().await.unwrap();
    // Spread-out pseudo-random vectors (xorshift from the index): no two nearly alike.
    let vector = |i: usize| -> Vec<f32> {
        let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (0..8)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    };
    for s in 0..5 {
        let items = (0..500)
            .map(|j| {
                let i = s * 500 + j;
                (chunk(&format!("c{i}"), &format!("s{s}"), "text"), vector(i))
            })
            .collect();
        chunks
            .replace_source("big", &format!("s{s}"), items)
            .await
            .unwrap();
    }
    let few = (0..5)
        .map(|i| (chunk(&format!("f{i}"), "f", "text"), vector(i)))
        .collect();
    chunks.replace_source("small", "f", few).await.unwrap();

    let (client, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT id FROM eino_chunks WHERE collection = 'big' \
             AND vector_dims(embedding) = 8 \
             ORDER BY embedding::vector(8) <=> '[1,2,3,4,5,6,7,8]'::vector(8) LIMIT 10",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("eino_chunks_hnsw_8")),
        "{plan:#?}"
    );
    let hits = chunks
        .search("big", ChunkQuery::new(&vector(1234), 3))
        .await
        .unwrap();
    assert_eq!(hits[0].id, "c1234", "{hits:?}");
    let small = chunks
        .search("small", ChunkQuery::new(&vector(2), 3))
        .await
        .unwrap();
    assert_eq!(small.len(), 3, "{small:?}");
    assert_eq!(small[0].id, "f2");
}
