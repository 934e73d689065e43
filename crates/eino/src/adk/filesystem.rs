//! Files an agent can work with (a deep agent's scratch space): the [`FileBackend`] trait
//! and three backends, [`SessionFiles`] (kept in the run's session: isolated per run,
//! saved with its checkpoints), [`MemoryFiles`] (per process, shared by runs) and
//! [`DirFiles`] (a directory on disk that paths cannot leave).
//!
//! Paths are `/`-separated and relative to the backend's root (a leading `/` is allowed);
//! `..` is refused.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use futures_util::future::BoxFuture;

use super::run::AgentRun;
use crate::error::{Error, ErrorKind, Result};

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The path, relative to the root.
    pub path: String,
    /// True for a directory.
    pub is_dir: bool,
}

/// Where an agent's files live.
pub trait FileBackend: Send + Sync {
    /// The entries directly under `dir` (`""` or `/` for the root), sorted.
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileEntry>>>;
    /// A file's text.
    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<String>>;
    /// Create or replace a file (parent directories are created).
    fn write<'a>(&'a self, path: &'a str, content: String) -> BoxFuture<'a, Result<()>>;
}

/// The path's parts, or an error for `..`, a prefix or an empty file name.
fn clean(path: &str) -> Result<Vec<String>> {
    let mut parts = Vec::new();
    for c in Path::new(path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(Error::invalid_input(format!(
                    "path '{path}' leaves the agent's files"
                )))
            }
        }
    }
    Ok(parts)
}

fn not_found(path: &str) -> Error {
    Error::invalid_input(format!("no file '{path}'"))
}

/// Files kept in memory. Cheap; lost with the process.
#[derive(Debug, Default)]
pub struct MemoryFiles {
    files: Mutex<BTreeMap<String, String>>,
}

impl MemoryFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        // Writers insert whole files, so a poisoned map is still consistent.
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FileBackend for MemoryFiles {
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileEntry>>> {
        let r = clean(dir).map(|parts| {
            let prefix = parts.join("/");
            let files = self.files();
            let mut out: Vec<FileEntry> = Vec::new();
            for path in files.keys() {
                let rest = match prefix.as_str() {
                    "" => path.as_str(),
                    p => match path.strip_prefix(p).and_then(|r| r.strip_prefix('/')) {
                        Some(r) => r,
                        None => continue,
                    },
                };
                let (name, is_dir) = match rest.split_once('/') {
                    Some((d, _)) => (d, true),
                    None => (rest, false),
                };
                let full = if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                };
                if !out.iter().any(|e| e.path == full) {
                    out.push(FileEntry { path: full, is_dir });
                }
            }
            out
        });
        Box::pin(async move { r })
    }
    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<String>> {
        let r = clean(path).and_then(|p| {
            self.files()
                .get(&p.join("/"))
                .cloned()
                .ok_or_else(|| not_found(path))
        });
        Box::pin(async move { r })
    }
    fn write<'a>(&'a self, path: &'a str, content: String) -> BoxFuture<'a, Result<()>> {
        let r = clean(path).and_then(|p| {
            if p.is_empty() {
                return Err(Error::invalid_input("a file needs a name"));
            }
            self.files().insert(p.join("/"), content);
            Ok(())
        });
        Box::pin(async move { r })
    }
}

/// The session key of a run's [`SessionFiles`].
const SESSION_FILES_KEY: &str = "eino.files";

/// Files kept in a run's session values: each run has its own, they travel with its
/// checkpoints (an interrupted run resumed elsewhere finds them), and they are gone when
/// the run is. At most `max_bytes` in all.
#[derive(Debug, Clone)]
pub struct SessionFiles {
    run: AgentRun,
    /// Most bytes of all files together (default 1 MiB).
    pub max_bytes: usize,
}

impl SessionFiles {
    /// The files of `run`.
    pub fn of(run: AgentRun) -> Self {
        Self {
            run,
            max_bytes: 1 << 20,
        }
    }

    fn files(&self) -> BTreeMap<String, String> {
        self.run.session_get(SESSION_FILES_KEY).unwrap_or_default()
    }
}

impl FileBackend for SessionFiles {
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileEntry>>> {
        let mem = MemoryFiles {
            files: Mutex::new(self.files()),
        };
        Box::pin(async move { mem.list(dir).await })
    }
    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<String>> {
        let r = clean(path).and_then(|p| {
            self.files()
                .remove(&p.join("/"))
                .ok_or_else(|| not_found(path))
        });
        Box::pin(async move { r })
    }
    fn write<'a>(&'a self, path: &'a str, content: String) -> BoxFuture<'a, Result<()>> {
        let r = clean(path).and_then(|p| {
            if p.is_empty() {
                return Err(Error::invalid_input("a file needs a name"));
            }
            let mut files = self.files();
            files.insert(p.join("/"), content);
            let total: usize = files.iter().map(|(k, v)| k.len() + v.len()).sum();
            if total > self.max_bytes {
                return Err(Error::invalid_input(format!(
                    "the run's files would take {total} bytes, more than {}",
                    self.max_bytes
                )));
            }
            self.run.session_set(SESSION_FILES_KEY, files)
        });
        Box::pin(async move { r })
    }
}

/// Files in a directory on disk; paths cannot leave it (`..` and symlinks pointing out are
/// refused). Reads are capped at `max_file_bytes`.
#[derive(Debug, Clone)]
pub struct DirFiles {
    root: PathBuf,
    /// Largest file read, in bytes (default 1 MiB).
    pub max_file_bytes: u64,
}

impl DirFiles {
    /// Files under `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io("cannot create the files directory"))?;
        let root = root
            .canonicalize()
            .map_err(io("cannot resolve the files directory"))?;
        Ok(Self {
            root,
            max_file_bytes: 1 << 20,
        })
    }

    fn resolve(&self, path: &str) -> Result<PathBuf> {
        let mut p = self.root.clone();
        p.extend(clean(path)?);
        // A symlink inside could point out: check where an existing path really is.
        if let Ok(real) = p.canonicalize() {
            if !real.starts_with(&self.root) {
                return Err(Error::invalid_input(format!(
                    "path '{path}' leaves the agent's files"
                )));
            }
        }
        Ok(p)
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidInput => {
                ErrorKind::InvalidInput
            }
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("{what}: {e}")).with_source(e)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal("file task failed").with_source(e))?
}

impl FileBackend for DirFiles {
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileEntry>>> {
        Box::pin(async move {
            let (p, root) = (self.resolve(dir)?, self.root.clone());
            blocking(move || {
                let mut out = Vec::new();
                for e in std::fs::read_dir(&p).map_err(io("cannot list"))? {
                    let e = e.map_err(io("cannot list"))?;
                    let rel = e.path().strip_prefix(&root).map(Path::to_path_buf);
                    let Ok(rel) = rel else { continue };
                    out.push(FileEntry {
                        path: rel.to_string_lossy().replace('\\', "/"),
                        is_dir: e.file_type().map(|t| t.is_dir()).unwrap_or(false),
                    });
                }
                out.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(out)
            })
            .await
        })
    }
    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let (p, max) = (self.resolve(path)?, self.max_file_bytes);
            let name = path.to_string();
            blocking(move || {
                let len = std::fs::metadata(&p).map_err(io("cannot read"))?.len();
                if len > max {
                    return Err(Error::invalid_input(format!(
                        "file '{name}' has {len} bytes, more than the {max} an agent may read"
                    )));
                }
                std::fs::read_to_string(&p).map_err(io("cannot read"))
            })
            .await
        })
    }
    fn write<'a>(&'a self, path: &'a str, content: String) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let p = self.resolve(path)?;
            blocking(move || {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir).map_err(io("cannot create directory"))?;
                }
                std::fs::write(&p, content).map_err(io("cannot write"))
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn contract(b: &dyn FileBackend) {
        b.write("/notes/a.md", "one".into()).await.unwrap();
        b.write("notes/sub/b.md", "two".into()).await.unwrap();
        b.write("top.txt", "three".into()).await.unwrap();
        assert_eq!(b.read("notes/a.md").await.unwrap(), "one");
        let root: Vec<(String, bool)> = b
            .list("/")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.path, e.is_dir))
            .collect();
        assert_eq!(root, [("notes".into(), true), ("top.txt".into(), false)]);
        let notes: Vec<String> = b
            .list("notes")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(notes, ["notes/a.md", "notes/sub"]);
        assert_eq!(
            b.read("../etc/passwd").await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            b.read("missing").await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }

    #[tokio::test]
    async fn memory_and_directory_backends_behave_alike() {
        contract(&MemoryFiles::new()).await;
        let dir = std::env::temp_dir().join(format!("eino-files-{}", std::process::id()));
        contract(&DirFiles::new(&dir).unwrap()).await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
