//! The connection pool, error classification, and DDL under one advisory lock.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use eino::{Error, ErrorKind, Result};
use tokio_postgres::NoTls;

/// An arbitrary constant: the advisory lock id under which every eino schema change runs.
const MIGRATION_LOCK: i64 = 0x6569_6e6f_6d69_6772;

/// A database error, classified: connection loss, serialization failures, deadlocks,
/// resource exhaustion and shutdowns are transient (a retry can help); the rest is not.
pub fn error(e: tokio_postgres::Error) -> Error {
    let transient = e.is_closed()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("08")
                || c == "40001"
                || c == "40P01"
                || c.starts_with("53")
                || c == "57P01"
        })
        || e.code().is_none();
    let kind = if transient {
        ErrorKind::Transient
    } else {
        ErrorKind::Internal
    };
    Error::new(kind, format!("database: {e}")).with_source(e)
}

/// A pool error: no connection could be had (transient).
pub fn pool_error(e: deadpool_postgres::PoolError) -> Error {
    Error::new(ErrorKind::Transient, format!("database pool: {e}")).with_source(e)
}

/// A PostgreSQL database: a pool of connections. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").finish_non_exhaustive()
    }
}

impl Postgres {
    /// A pool of up to `max_connections` connections to `url`
    /// (`postgres://user:pass@host:port/db`); connections are made as needed, so a wrong
    /// URL shows with the first query.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self> {
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::invalid_input(format!("database URL: {e}")))?;
        // Chunk searches filter an HNSW scan to one collection; pgvector's iterative scan
        // goes on until the limit is filled instead of stopping at `hnsw.ef_search`
        // candidates (a placeholder setting until pgvector loads).
        let options = format!(
            "{} -c hnsw.iterative_scan=relaxed_order",
            cfg.get_options().unwrap_or("")
        );
        cfg.options(options.trim_start());
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| Error::invalid_input(format!("database URL: {e}")))?;
        Ok(Self { pool })
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Run `sql` in one transaction under the migrations' advisory lock (DDL that
    /// replicas starting together would otherwise race on).
    pub async fn locked(&self, sql: &str) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(error)?;
        tx.batch_execute(sql).await.map_err(error)?;
        tx.commit().await.map_err(error)
    }

    /// Apply the `migrations` not yet applied, in order, in one transaction under the
    /// migrations' lock; the count applied is kept in table `version_table` (one row). A
    /// database migrated by a newer binary (more versions than `migrations`) is refused.
    pub async fn migrate(&self, version_table: &str, migrations: &[&str]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(error)?;
        // The table name is the caller's constant, never user input.
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {version_table} (version BIGINT NOT NULL)"
        ))
        .await
        .map_err(error)?;
        let done: i64 = tx
            .query_opt(&format!("SELECT version FROM {version_table}"), &[])
            .await
            .map_err(error)?
            .map_or(0, |r| r.get(0));
        let done = usize::try_from(done).unwrap_or(usize::MAX);
        if done > migrations.len() {
            return Err(Error::internal(format!(
                "the database has schema version {done}, newer than this binary's {}",
                migrations.len()
            )));
        }
        for sql in &migrations[done..] {
            tx.batch_execute(sql).await.map_err(error)?;
        }
        let v = migrations.len() as i64;
        tx.execute(&format!("DELETE FROM {version_table}"), &[])
            .await
            .map_err(error)?;
        tx.execute(
            &format!("INSERT INTO {version_table} (version) VALUES ($1)"),
            &[&v],
        )
        .await
        .map_err(error)?;
        tx.commit().await.map_err(error)
    }
}
