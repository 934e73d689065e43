//! `eino serve`'s `/mcp` endpoint and `eino mcp` (stdio) against the official MCP Python
//! SDK (`mcp` 2.x) and the MCP Inspector's CLI (npm), both installed under the target
//! directory on first run: applications as tools, knowledge search, knowledge bases as
//! resources; with authentication off (loopback) and on (an API key; without it the
//! endpoint is 401 like the rest of the API).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{serve, venv};

const PACKAGES: &[&str] = &["mcp==2.3.0"];
const INSPECTOR: &str = "@modelcontextprotocol/inspector@2.12.0";
/// The inspector's arguments for a knowledge search.
const SEARCH: &[&str] = &[
    "--method",
    "tools/call",
    "--tool-name",
    "search_knowledge",
    "--tool-arg",
    "query=Cargo",
];

/// The MCP Inspector in CLI mode (npm, installed once under the target directory) against
/// `url`'s `/mcp`: whether it succeeded, and its output.
fn inspector(url: &str, args: &[&str]) -> (bool, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-inspector");
    let marker = dir.join("installed.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(INSPECTOR) {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(INSPECTOR)
            .status()
            .expect("npm runs");
        assert!(ok.success(), "npm install {INSPECTOR} failed");
        std::fs::write(&marker, INSPECTOR).unwrap();
    }
    let out = Command::new(dir.join("node_modules/.bin/mcp-inspector"))
        .arg("--cli")
        .arg(format!("{url}/mcp"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the inspector runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Run tests/mcp_client.py with `args` (a base URL, or `--stdio` and a command).
fn client_with(args: &[&str], key: Option<&str>) -> (bool, String) {
    let env = venv("eino-mcp-client-venv", PACKAGES);
    let mut cmd = Command::new(env.join("bin/python"));
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py"))
        .args(args)
        .env("EINO_TELEMETRY__LOG_LEVEL", "warn")
        .stdin(Stdio::null());
    if let Some(k) = key {
        cmd.env("EINO_API_KEY", k);
    }
    let out = cmd.output().expect("python runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("mcp ok"), text)
}

fn ingest(url: &str, key: Option<&str>) {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../eino-rag/tests/fixtures/docs/rust.md");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eino"));
    cmd.args([
        "ingest",
        doc.to_str().unwrap(),
        "--kb",
        "docs",
        "--url",
        url,
    ]);
    if let Some(k) = key {
        cmd.args(["--api-key", k]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_sdk_uses_eino_over_mcp_with_and_without_auth() {
    let data = tempfile::tempdir().unwrap();
    let (_open, url) = serve(&["--data-dir", data.path().to_str().unwrap()], &[]);
    ingest(&url, None);
    let (ok, out) = client(&url, None);
    assert!(ok, "without auth:\n{out}");
    let (ok, out) = inspector(&url, &["--method", "tools/list"]);
    assert!(
        ok && out.contains("ask_assistant") && out.contains("search_knowledge"),
        "{out}"
    );
    let (ok, out) = inspector(&url, SEARCH);
    assert!(ok && out.contains("rust.md"), "{out}");

    let (key, other) = ("mcp-test-key-0123456789", "mcp-other-tenant-key-0123");
    let keys = format!(
        r#"[{{sha256="{}",tenant="acme"}},{{sha256="{}",tenant="beta"}}]"#,
        eino_server::auth::hash_key(key),
        eino_server::auth::hash_key(other)
    );
    let data = tempfile::tempdir().unwrap();
    let (_locked, url) = serve(
        &["--data-dir", data.path().to_str().unwrap()],
        &[("EINO_AUTH__API_KEYS", &keys)],
    );
    ingest(&url, Some(key));
    let (ok, out) = client(&url, Some(key));
    assert!(ok, "with a key:\n{out}");
    let (ok, out) = client(&url, None);
    assert!(!ok, "without the key:\n{out}");
    let bearer = format!("Authorization: Bearer {key}");
    let (ok, out) = inspector(&url, &["--method", "tools/list", "--header", &bearer]);
    assert!(ok && out.contains("ask_assistant"), "{out}");
    let (ok, out) = inspector(&url, &["--method", "resources/list", "--header", &bearer]);
    assert!(ok && out.contains("eino://knowledge-bases/docs"), "{out}");
    let (ok, out) = inspector(&url, &["--method", "tools/list"]);
    assert!(!ok, "the inspector without the key:\n{out}");
    // Another tenant's key sees none of acme's knowledge bases or passages.
    let theirs = format!("Authorization: Bearer {other}");
    let (ok, out) = inspector(&url, &["--method", "resources/list", "--header", &theirs]);
    assert!(ok && !out.contains("knowledge-bases/docs"), "{out}");
    let (ok, out) = inspector(&url, &[SEARCH, &["--header", &theirs]].concat());
    assert!(
        ok && out.contains("No matching passages") && !out.contains("rust.md"),
        "{out}"
    );
    let status = reqwest_status(&format!("{url}/mcp"));
    assert_eq!(status, 401);
}

fn client(url: &str, key: Option<&str>) -> (bool, String) {
    client_with(&[url], key)
}

/// `eino mcp` over stdio, driven by the SDK's stdio client: in-process on a data directory
/// a server filled and left, and through a running server (`--url`, with its key).
#[test]
fn eino_mcp_serves_over_stdio_in_process_and_through_a_server() {
    let eino = env!("CARGO_BIN_EXE_eino");
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    {
        let (_server, url) = serve(&["--data-dir", dir], &[]);
        ingest(&url, None);
    }
    let (ok, out) = client_with(&["--stdio", eino, "mcp", "--data-dir", dir], None);
    assert!(ok, "in-process:\n{out}");

    let key = "mcp-proxy-key-0123456789";
    let keys = format!(
        r#"[{{sha256="{}",tenant="acme"}}]"#,
        eino_server::auth::hash_key(key)
    );
    let data = tempfile::tempdir().unwrap();
    let (_server, url) = serve(
        &["--data-dir", data.path().to_str().unwrap()],
        &[("EINO_AUTH__API_KEYS", &keys)],
    );
    ingest(&url, Some(key));
    let (ok, out) = client_with(
        &["--stdio", eino, "mcp", "--url", &url, "--api-key", key],
        None,
    );
    assert!(ok, "through the server:\n{out}");
}

/// The status of an unauthenticated POST (the endpoint is behind the API's auth).
fn reqwest_status(url: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}
