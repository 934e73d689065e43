//! SQLite stores for eino.
//!
//! [`SqliteCheckpointStore`] keeps checkpoints in one table of a SQLite file in WAL mode,
//! so a run interrupted in one process resumes in another:
//!
//! ```no_run
//! # async fn demo() -> eino::Result<()> {
//! use std::sync::Arc;
//! use eino::compose::CompileOptions;
//! let store = Arc::new(eino_sqlite::SqliteCheckpointStore::open("runs.db").await?);
//! let opts = CompileOptions::default().with_checkpoint_store(store);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eino::compose::CheckpointStore;
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;
use rusqlite::{params, Connection, OptionalExtension};

/// Checkpoints in a SQLite database (table `eino_checkpoints`). Cheap to clone; statements
/// run on tokio's blocking pool, one at a time per store (SQLite has one writer anyway).
#[derive(Debug, Clone)]
pub struct SqliteCheckpointStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Map a database error to ours: "busy"/"locked" can pass on a retry, the rest not.
fn db_error(what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| {
        let kind = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                ErrorKind::Transient
            }
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("sqlite checkpoint store: {what}")).with_source(e)
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS eino_checkpoints (
    id TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
)";

impl SqliteCheckpointStore {
    /// Open (creating if needed) the database file at `path`, in WAL mode.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let c = Connection::open(&p).map_err(db_error("cannot open database"))?;
            // WAL + NORMAL: durable against process crashes, one fsync per WAL checkpoint.
            c.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_error("cannot enable WAL"))?;
            c.pragma_update(None, "synchronous", "NORMAL")
                .map_err(db_error("cannot set synchronous"))?;
            c.busy_timeout(Duration::from_secs(5))
                .map_err(db_error("cannot set busy timeout"))?;
            c.execute_batch(SCHEMA)
                .map_err(db_error("cannot create table"))?;
            Ok(c)
        })
        .await
        .map_err(|e| Error::internal(format!("database task failed: {e}")))??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Open a database URL such as `sqlite://data/eino.db` or `sqlite:runs.db`.
    pub async fn connect(url: &str) -> Result<Self> {
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return Err(Error::invalid_input(format!(
                "not a SQLite URL (expected sqlite:...): '{url}'"
            )));
        };
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(Error::invalid_input(format!(
                "SQLite URL without a path: '{url}'"
            )));
        }
        Self::open(path).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside a statement cannot leave the connection half-used.
            let c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&c)
        })
        .await
        .map_err(|e| Error::internal(format!("database task failed: {e}")))?
    }

    /// Delete checkpoints not updated for `age` (stale interrupted runs); returns how many.
    pub async fn delete_older_than(&self, age: Duration) -> Result<u64> {
        let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        self.with(move |c| {
            c.prepare_cached("DELETE FROM eino_checkpoints WHERE updated_at < unixepoch() - ?1")
                .and_then(|mut s| s.execute(params![secs]))
                .map(|n| n as u64)
                .map_err(db_error("cannot delete old checkpoints"))
        })
        .await
    }
}

impl CheckpointStore for SqliteCheckpointStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        let id = id.to_string();
        Box::pin(self.with(move |c| {
            c.prepare_cached("SELECT data FROM eino_checkpoints WHERE id = ?1")
                .and_then(|mut s| {
                    s.query_row(params![id], |r| r.get::<_, Vec<u8>>(0))
                        .optional()
                })
                .map_err(db_error("cannot read checkpoint"))
        }))
    }

    fn put<'a>(&'a self, id: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<()>> {
        let id = id.to_string();
        Box::pin(self.with(move |c| {
            c.prepare_cached(
                "INSERT INTO eino_checkpoints (id, data, updated_at) VALUES (?1, ?2, unixepoch())
                 ON CONFLICT(id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![id, data]))
            .map(|_| ())
            .map_err(db_error("cannot write checkpoint"))
        }))
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        let id = id.to_string();
        Box::pin(self.with(move |c| {
            c.prepare_cached("DELETE FROM eino_checkpoints WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id]))
                .map(|_| ())
                .map_err(db_error("cannot delete checkpoint"))
        }))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(self.with(|c| {
            let mut s = c
                .prepare_cached("SELECT id FROM eino_checkpoints ORDER BY id")
                .map_err(db_error("cannot list checkpoints"))?;
            let rows = s
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db_error("cannot list checkpoints"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(db_error("cannot list checkpoints"))
        }))
    }
}
