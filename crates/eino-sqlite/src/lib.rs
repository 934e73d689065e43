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

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use eino::compose::CheckpointStore;
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

/// Checkpoints in a SQLite database (table `eino_checkpoints`).
#[derive(Debug, Clone)]
pub struct SqliteCheckpointStore {
    pool: SqlitePool,
}

/// Map a database error to ours: "busy"/"locked" and I/O problems can pass, the rest not.
fn db_error(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        let kind = match &e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                ErrorKind::Transient
            }
            sqlx::Error::Database(d)
                if d.message().contains("locked") || d.message().contains("busy") =>
            {
                ErrorKind::Transient
            }
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("sqlite checkpoint store: {what}")).with_source(e)
    }
}

/// Pool settings: no liveness ping before each use (it doubles the round trips to the
/// SQLite worker thread, and a local file does not drop connections).
fn pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
}

impl SqliteCheckpointStore {
    /// Open (creating if needed) the database file at `path`, in WAL mode.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true);
        Self::connect_with(opts).await
    }

    async fn connect_with(opts: SqliteConnectOptions) -> Result<Self> {
        let opts = opts
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: durable against process crashes, one fsync per WAL checkpoint.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = pool_options()
            .connect_with(opts)
            .await
            .map_err(db_error("cannot open database"))?;
        Self::from_pool(pool).await
    }

    /// Open a database URL such as `sqlite://data/eino.db?mode=rwc`.
    pub async fn connect(url: &str) -> Result<Self> {
        if !url.starts_with("sqlite:") {
            return Err(Error::invalid_input(format!(
                "not a SQLite URL (expected sqlite:...): '{url}'"
            )));
        }
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid_input(format!("bad SQLite URL '{url}'")).with_source(e))?;
        Self::connect_with(opts).await
    }

    /// Use an existing pool (e.g. the service's), creating the table if needed.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS eino_checkpoints (
                id TEXT PRIMARY KEY NOT NULL,
                data BLOB NOT NULL,
                updated_at INTEGER NOT NULL DEFAULT (unixepoch())
            )",
        )
        .execute(&pool)
        .await
        .map_err(db_error("cannot create table"))?;
        Ok(Self { pool })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Delete checkpoints not updated for `age` (stale interrupted runs); returns how many.
    pub async fn delete_older_than(&self, age: Duration) -> Result<u64> {
        let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        let done = sqlx::query("DELETE FROM eino_checkpoints WHERE updated_at < unixepoch() - ?")
            .bind(secs)
            .execute(&self.pool)
            .await
            .map_err(db_error("cannot delete old checkpoints"))?;
        Ok(done.rows_affected())
    }
}

impl CheckpointStore for SqliteCheckpointStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT data FROM eino_checkpoints WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error("cannot read checkpoint"))?;
            Ok(row.map(|r| r.get::<Vec<u8>, _>(0)))
        })
    }

    fn put<'a>(&'a self, id: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO eino_checkpoints (id, data, updated_at) VALUES (?, ?, unixepoch())
                 ON CONFLICT(id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            )
            .bind(id)
            .bind(data)
            .execute(&self.pool)
            .await
            .map_err(db_error("cannot write checkpoint"))?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM eino_checkpoints WHERE id = ?")
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db_error("cannot delete checkpoint"))?;
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT id FROM eino_checkpoints ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error("cannot list checkpoints"))?;
            Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
        })
    }
}
