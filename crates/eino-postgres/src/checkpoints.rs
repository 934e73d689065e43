//! Checkpoints of interrupted runs in PostgreSQL (table `eino_checkpoints`), so every
//! process on the database can resume a run another one interrupted.

use eino::compose::CheckpointStore;
use eino::Result;
use futures_util::future::BoxFuture;

use crate::pool::{error as pg, Postgres};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS eino_checkpoints (
    id TEXT PRIMARY KEY, data BYTEA NOT NULL, updated_at BIGINT NOT NULL)";

/// Unix milliseconds now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A [`CheckpointStore`] in table `eino_checkpoints` of a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PostgresCheckpointStore {
    db: Postgres,
}

impl PostgresCheckpointStore {
    /// The store in `db`, creating its table if needed.
    pub async fn open(db: Postgres) -> Result<Self> {
        db.locked(SCHEMA).await?;
        Ok(Self { db })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.db.client().await
    }
}

impl CheckpointStore for PostgresCheckpointStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let row = self
                .client()
                .await?
                .query_opt("SELECT data FROM eino_checkpoints WHERE id = $1", &[&id])
                .await
                .map_err(pg)?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn put<'a>(&'a self, id: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "INSERT INTO eino_checkpoints (id, data, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                    &[&id, &data, &now_ms()],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute("DELETE FROM eino_checkpoints WHERE id = $1", &[&id])
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query("SELECT id FROM eino_checkpoints ORDER BY id", &[])
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}
