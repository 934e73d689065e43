//! The main job, end to end: the `eino` binary serves the embedded defaults (local SmolLM2
//! and MiniLM, SQLite, in-process index) and the official `openai` Python SDK and
//! LangChain's `ChatOpenAI` work against it unchanged. The test installs both packages
//! into a virtualenv under the target directory on first run (pinned versions).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{serve, venv};

const PACKAGES: &[&str] = &["openai==3.57.0", "langchain-openai==1.7.4"];

#[test]
fn openai_sdk_and_langchain_work_against_eino_serve() {
    let env = venv("eino-sdk-venv", PACKAGES);
    let data = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&["--data-dir", data.path().to_str().unwrap()], &[]);
    let out = Command::new(env.join("bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk_client.py"))
        .arg(&url)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sdk client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("sdk ok"), "{stdout}");

    // The client commands against the same server.
    let eino = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_eino"))
            .args(args)
            .args(["--url", &url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        let o = String::from_utf8_lossy(&out.stdout).into_owned();
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "eino {args:?}: {o}\n{e}");
        o
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../eino-rag/tests/fixtures/docs");
    let ingested = eino(
        &["ingest", fixtures.to_str().unwrap(), "--kb", "docs"],
        None,
    );
    let line = |name: &str| {
        ingested
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("rust.md\t").contains("added"), "{ingested}");
    assert!(line("truncated.docx\t").contains("failed"), "{ingested}");
    let again = eino(
        &[
            "ingest",
            fixtures.join("rust.md").to_str().unwrap(),
            "--kb",
            "docs",
        ],
        None,
    );
    assert!(again.contains("unchanged"), "{again}");
    let graph = eino(&["graph", "assistant"], None);
    assert!(
        graph.starts_with("flowchart TD") && graph.contains("retrieve"),
        "{graph}"
    );
    eino(&["health"], None);
    eino(&["health", "--path", "/health"], None);
    let chat = eino(&["chat"], Some("What is Cargo?\n"));
    assert!(!chat.trim().is_empty(), "eino chat printed an answer");
}

#[test]
fn serve_refuses_a_public_address_without_auth() {
    let out = Command::new(env!("CARGO_BIN_EXE_eino"))
        .args(["serve", "--addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{err}"
    );
}

#[test]
fn bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("eino.yaml");
    std::fs::write(&cfg, "applications:\n  a:\n    model: nope\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_eino"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("applications.a.model") && err.contains("unknown model"),
        "{err}"
    );
}

#[test]
fn keys_hash_prints_sha256() {
    let out = Command::new(env!("CARGO_BIN_EXE_eino"))
        .args(["keys", "hash", "0123456789abcdef"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f"
    );
}

/// Runs `eino ARGS` with `env`; its status, stdout and stderr.
fn eino(args: &[&str], env: &[(&str, &Path)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eino"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// As [`eino`], which must succeed; its stdout.
fn eino_ok(args: &[&str], env: &[(&str, &Path)]) -> String {
    let (ok, stdout, stderr) = eino(args, env);
    assert!(ok, "eino {args:?}: {stdout}{stderr}");
    stdout
}

#[test]
fn models_list_and_pull() {
    // An empty cache: both default models are missing, and the message says what to run.
    let empty = tempfile::tempdir().unwrap();
    let listed = eino_ok(&["models", "list"], &[("EINO_MODELS_DIR", empty.path())]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed
            .lines()
            .all(|l| l.contains("\tmissing\t") && l.contains("eino models pull")),
        "{listed}"
    );
    // The cache the other tests use (`pull` downloads only what no earlier test fetched;
    // fetches race safely): it prints each model's directory, then `list` says cached.
    let pulled = eino_ok(&["models", "pull"], &[]);
    for line in pulled.lines() {
        let dir = line.split('\t').nth(1).unwrap();
        assert!(Path::new(dir).is_dir(), "{line}");
    }
    let listed = eino_ok(&["models", "list"], &[]);
    assert_eq!(listed.matches("\tcached\t").count(), 2, "{listed}");
}

/// `eino models pull --hub` fetches a repository's files (here from a stand-in hub on
/// loopback, given by `HF_ENDPOINT`), and `list` shows the download.
#[test]
fn models_pull_from_a_hub_repository() {
    use eino_local::testing::HubStandIn;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hub = rt.block_on(async {
        let hub = HubStandIn::start().await;
        hub.serve("someone/tiny", "v1", "config.json", b"{\"a\": 1}".to_vec())
            .await;
        hub.serve("someone/tiny", "v1", "sub/tokenizer.json", b"{}".to_vec())
            .await;
        hub
    });
    let endpoint = hub.endpoint();
    let cache = tempfile::tempdir().unwrap();
    let env = [
        ("EINO_MODELS_DIR", cache.path()),
        ("HF_ENDPOINT", Path::new(&endpoint)),
    ];
    let args = [
        "models",
        "pull",
        "--hub",
        "someone/tiny",
        "--revision",
        "v1",
        "--file",
        "config.json",
        "--file",
        "sub/tokenizer.json",
    ];
    let pulled = eino_ok(&args, &env);
    let paths: Vec<&str> = pulled
        .lines()
        .map(|l| l.strip_prefix("someone/tiny\t").expect(l))
        .collect();
    assert_eq!(paths.len(), 2, "{pulled}");
    assert_eq!(std::fs::read(paths[0]).unwrap(), b"{\"a\": 1}");
    assert!(paths[1].ends_with("sub/tokenizer.json"), "{pulled}");

    let listed = eino_ok(&["models", "list"], &env);
    let want = format!("someone/tiny@{}\thub\t", HubStandIn::COMMIT);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&want))
        .expect(&listed);
    assert!(line.ends_with("\tconfig.json,sub/tokenizer.json"), "{line}");

    // A repository the hub does not have: a failed command that names it.
    let (ok, _, stderr) = eino(
        &["models", "pull", "--hub", "someone/gone", "--file", "x"],
        &env,
    );
    assert!(!ok);
    assert!(stderr.contains("someone/gone"), "{stderr}");
    // --file without --hub is a usage error.
    let (ok, _, stderr) = eino(&["models", "pull", "--file", "x"], &env);
    assert!(!ok && stderr.contains("--hub"), "{stderr}");
}

#[test]
fn health_fails_when_the_server_does_not_answer_2xx() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = Command::new(env!("CARGO_BIN_EXE_eino"))
        .args(["health", "--url", &url, "--timeout-secs", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("GET {url}/ready")), "{err}");
}
