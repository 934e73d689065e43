//! The web UI in a real headless browser (Debian chromium driven by npm playwright-core,
//! both installed by scripts/browser.sh): chat with history and a trace, sessions after a
//! reload, a knowledge-base upload with the real MiniLM embedder, and a tool approval.
//! The chat models are the fakes of common/ (the test is about the page, not the answers).

mod common;

use std::path::Path;
use std::process::Command;

use common::agent::{configure, ToolUser, Webhooks};
use common::{minilm, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_chats_uploads_and_approves_in_a_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eino-browser");
    let script = root.join("../../scripts/browser.sh");
    let installed = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(script)
            .arg(browser_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        installed.status.success(),
        "scripts/browser.sh: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let modules = String::from_utf8(installed.stdout)
        .unwrap()
        .trim()
        .to_string();

    let hooks = Webhooks::start().await;
    let model = ToolUser::default();
    let embedder = minilm().await;
    std::env::set_var(common::agent::KEY_VAR, "s3cret");
    let (h, m) = (hooks.clone(), model.clone());
    let s = TestServer::start(
        move |c| {
            configure(c, &h);
            c.embedders.insert(
                "minilm".into(),
                eino_server::config::EmbedderConfig::Local {
                    path: None,
                    hub: None,
                },
            );
        },
        move |r| {
            r.insert_model("tooluser", std::sync::Arc::new(m));
            r.embedders.insert("minilm".into(), embedder);
        },
    )
    .await;

    // The page and its assets, with a policy that allows only this origin.
    let r = s.http.get(s.url("/ui/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let js = s.http.get(s.url("/ui/app.js")).send().await.unwrap();
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));

    let url = s.url.clone();
    let test = root.join("tests/ui/ui_test.mjs");
    let fixture = root.join("../eino-rag/tests/fixtures/docs/rust.md");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(test)
            .arg(url)
            .arg(fixture)
            .env("PLAYWRIGHT_DIR", modules)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        run.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        hooks.pay_calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the approved call ran once"
    );
}

#[tokio::test]
async fn the_web_ui_can_be_turned_off() {
    let s = TestServer::start(|c| c.server.web_ui = false, |_| {}).await;
    let (status, body) = s.get("/ui/").await;
    assert_eq!(status, 404, "{body}");
    let r = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
