//! The SQLite checkpoint store: contract, WAL mode, a checkpointed graph, and a run that is
//! interrupted in one process and resumed in another (the `approval` example, run twice).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use eino::compose::{
    lambda, CheckpointRun, CheckpointStore, CompileOptions, Context, Graph, Runnable, END, START,
};
use eino_sqlite::SqliteCheckpointStore;

#[tokio::test]
async fn store_contract_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCheckpointStore::open(dir.path().join("cp.db"))
        .await
        .unwrap();
    assert_eq!(store.get("a").await.unwrap(), None);
    store.put("b", b"two".to_vec()).await.unwrap();
    store.put("a", b"one".to_vec()).await.unwrap();
    store.put("a", b"uno".to_vec()).await.unwrap();
    assert_eq!(store.get("a").await.unwrap().as_deref(), Some(&b"uno"[..]));
    assert_eq!(store.list().await.unwrap(), ["a", "b"]);
    store.delete("a").await.unwrap();
    store.delete("missing").await.unwrap();
    assert_eq!(store.list().await.unwrap(), ["b"]);
    // WAL is recorded in the file: a fresh connection sees it.
    let c = rusqlite::Connection::open(store.path()).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(
        store
            .delete_older_than(std::time::Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_older_than(std::time::Duration::ZERO)
            .await
            .unwrap(),
        0,
        "rows written this second are not older than zero seconds"
    );
}

#[tokio::test]
async fn reopened_store_resumes_a_graph() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let build = |store: Arc<SqliteCheckpointStore>| {
        let mut g = Graph::<String, String>::new();
        let a = g.add_node("a", lambda(|x: String| async move { Ok(format!("{x}a")) }));
        let b = g.add_node("b", lambda(|x: String| async move { Ok(format!("{x}b")) }));
        g.add_edge(START, a);
        g.add_edge(a, b);
        g.add_edge(b, END);
        g.compile(
            CompileOptions::default()
                .with_checkpoint_store(store)
                .with_interrupt_before(["b"]),
        )
        .unwrap()
    };
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("run"));
    {
        let store = Arc::new(SqliteCheckpointStore::open(&path).await.unwrap());
        let e = build(store).invoke(">".into(), &ctx).await.unwrap_err();
        assert_eq!(e.interrupt_info().unwrap().before_nodes, ["b"]);
    }
    let store = Arc::new(SqliteCheckpointStore::open(&path).await.unwrap());
    let out = build(store.clone())
        .invoke(String::new(), &ctx)
        .await
        .unwrap();
    assert_eq!(out, ">ab");
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn urls_and_bad_urls() {
    let e = SqliteCheckpointStore::connect("postgres://nope")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), eino::ErrorKind::InvalidInput);
    assert!(SqliteCheckpointStore::connect("sqlite://").await.is_err());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("u.db").display());
    let s = SqliteCheckpointStore::connect(&url).await.unwrap();
    s.put("x", vec![1]).await.unwrap();
    assert_eq!(s.get("x").await.unwrap(), Some(vec![1]));
}

#[tokio::test]
async fn a_second_store_on_the_same_file_sees_the_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteCheckpointStore::open(&path).await.unwrap();
    let b = SqliteCheckpointStore::open(&path).await.unwrap();
    a.put("k", b"v".to_vec()).await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// An example binary; built by `cargo test`, or here if this test runs alone.
fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug_dir = exe.parent().and_then(|p| p.parent()).unwrap().to_path_buf();
    let bin = debug_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "eino-sqlite", "--example", name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "building the {name} example failed");
    }
    bin
}

fn run(bin: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn interrupt_in_one_process_resume_in_another() {
    let bin = example_bin("approval");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let db = db.to_str().unwrap();

    let first = run(&bin, &["start", db, "r1", "refund order 42"]);
    assert!(first.starts_with("waiting: "), "{first}");
    assert!(first.contains(r#""rerun_nodes":["review"]"#), "{first}");
    assert!(
        first.contains(r#""approve?":"Action: refund order 42""#),
        "{first}"
    );
    let listed = run(&bin, &["list", db]);
    assert!(listed.starts_with("r1: "), "{listed}");

    let second = run(&bin, &["resume", db, "r1", "yes"]);
    assert_eq!(second.trim(), "finished: done: Action: refund order 42");
    assert_eq!(run(&bin, &["list", db]), "");

    run(&bin, &["start", db, "r2", "delete everything"]);
    let rejected = run(&bin, &["resume", db, "r2", "no"]);
    assert_eq!(
        rejected.trim(),
        "finished: nothing done: the reviewer rejected it"
    );
}

/// An agent run (a supervisor, its clerk, the clerk's tool asking for approval) stops in one
/// process and is resumed in another with data for the waiting tool call.
#[test]
fn agent_interrupt_in_one_process_resume_in_another() {
    let bin = example_bin("agent_approval");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agents.db");
    let db = db.to_str().unwrap();

    let first = run(&bin, &["start", db, "a1", "order 42"]);
    let point = "agent:sup;agent:clerk;tool:refund:r1";
    assert!(first.starts_with(&format!("waiting: {point} ")), "{first}");
    assert!(first.contains("approve refund"), "{first}");

    let second = run(&bin, &["resume", db, "a1", point, "yes"]);
    assert_eq!(
        second.lines().collect::<Vec<_>>(),
        [
            r#"clerk: Refund: refunded {"order":"order 42"}"#,
            r#"sup: Done. Refund: refunded {"order":"order 42"}"#
        ]
    );
    // Completed: the checkpoint is gone, so resuming again is refused.
    let out = Command::new(&bin)
        .args(["resume", db, "a1", point, "yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no checkpoint 'a1'"));
}
