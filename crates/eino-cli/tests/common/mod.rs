//! What the binary's end-to-end tests share: throwaway virtualenvs with pinned PyPI
//! packages, and `eino serve` child processes (on their own throwaway PostgreSQL in the
//! second pass of scripts/test.sh, `EINO_TEST_STORE=postgres`).

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn python() -> String {
    std::env::var("EINO_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A virtualenv `name` with the pinned `packages`; reused when its marker names the
/// same pins.
pub fn venv(name: &str, packages: &[&str]) -> PathBuf {
    // Tests of one binary run in parallel: the first to need the venv builds it, the
    // others wait for it instead of building it into the same directory at once.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let marker = dir.join("installed.txt");
    let want = packages.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let ok = Command::new(python())
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .expect("python3 runs");
    assert!(ok.success(), "python3 -m venv failed");
    let pip = dir.join("bin/pip");
    let ok = Command::new(&pip)
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages)
        .status()
        .expect("pip runs");
    assert!(ok.success(), "pip install {packages:?} failed");
    std::fs::write(&marker, want).unwrap();
    dir
}

/// Serve `app` on a free loopback port from a thread of its own (tests' fake upstreams
/// and webhooks); its base URL.
pub fn serve_router(app: axum::Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    url
}

/// The server tests' throwaway PostgreSQL.
#[path = "../../../eino-server/tests/common/pg.rs"]
pub mod pg;

/// A child process, killed on drop (then its PostgreSQL, if it has one, is stopped).
pub struct Server(pub Child, pub Option<pg::Postgres>);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_ready(url: &str, server: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let addr = url.trim_start_matches("http://");
    while Instant::now() < deadline {
        if let Some(status) = server.try_wait().unwrap() {
            panic!("eino serve exited early: {status}");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = s.write_all(
                format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("server not ready in time");
}

/// `eino serve` on a free loopback port with `args` (after `serve`) and `env`, ready.
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> (Server, String) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eino"));
    cmd.args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("EINO_TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let pg = (pg::requested() && !env.iter().any(|(k, _)| *k == "EINO_STORE__DATABASE_URL"))
        .then(pg::Postgres::start);
    if let Some(pg) = &pg {
        cmd.env("EINO_STORE__DATABASE_URL", &pg.url);
    }
    let mut server = Server(cmd.spawn().expect("eino serve starts"), pg);
    wait_ready(&url, &mut server.0);
    (server, url)
}
