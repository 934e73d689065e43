//! What the MCP client tests need: the npm package `@modelcontextprotocol/server-everything`
//! and the Python SDK `mcp`, installed once under the target directory (pinned), and the
//! test servers in `tests/servers/`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const EVERYTHING: &str = "@modelcontextprotocol/server-everything@2026.8.31";
const PYTHON_SDK: &str = "mcp==2.3.0";

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// `dist/index.js` of server-everything (run with `node … stdio|streamableHttp`).
pub fn everything() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmp("mcp-npm");
        let marker = dir.join("installed.txt");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(EVERYTHING) {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let ok = Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(EVERYTHING)
                .status()
                .expect("npm runs (Node.js is needed for the MCP tests)");
            assert!(ok.success(), "npm install {EVERYTHING} failed");
            std::fs::write(&marker, EVERYTHING).unwrap();
        }
        dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
    })
    .clone()
}

/// A Python with the official MCP SDK.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let dir = tmp("mcp-python-venv");
        let marker = dir.join("installed.txt");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(PYTHON_SDK) {
            let _ = std::fs::remove_dir_all(&dir);
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(ok.success(), "python3 -m venv failed");
            let ok = Command::new(dir.join("bin/pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    PYTHON_SDK,
                ])
                .status()
                .unwrap();
            assert!(ok.success(), "pip install {PYTHON_SDK} failed");
            std::fs::write(&marker, PYTHON_SDK).unwrap();
        }
        dir.join("bin/python")
    })
    .clone()
}

/// A test server script in `tests/servers/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers")
        .join(name)
}

/// A loopback port nobody listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something accepts connections on `port` (a server started by a test).
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A server process a test started: killed when the test ends, passing or not (a panic
/// must not leave it running with the test harness's output pipe open).
pub struct Spawned(pub std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `program args` quietly, with `env`, and wait until it listens on `port`.
pub fn spawn_listening(
    program: &Path,
    args: &[&str],
    env: &[(&str, String)],
    port: u16,
) -> Spawned {
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let spawned = Spawned(child);
    wait_for_port(port);
    spawned
}
