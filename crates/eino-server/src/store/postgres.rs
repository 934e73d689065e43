//! The PostgreSQL store: the same tables as SQLite, a connection pool (deadpool), and
//! migrations guarded by an advisory lock so several replicas can start at once.

use eino::schema::Message;
use eino::{Error, Result};
use eino_postgres::{error as pg, Postgres, PostgresChunks};
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;

use super::{
    json_err, now_ms, InterruptedRun, JobStatus, KbDocument, KnowledgeBase, RunRecord, RunRow,
    SessionInfo, Store,
};

use super::MIGRATIONS;

/// Sessions, knowledge bases and runs in PostgreSQL.
#[derive(Clone)]
pub struct PostgresStore {
    db: Postgres,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user:pass@host:port/db`) with up to `max_connections`
    /// pooled connections, and run pending migrations.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self> {
        let db = Postgres::connect(url, max_connections)
            .await
            .map_err(|e| Error::invalid_input(format!("store.database_url: {}", e.message())))?;
        db.migrate("eino_schema", MIGRATIONS).await?;
        Ok(Self { db })
    }

    /// The database (pool), for the backends that share it.
    pub fn database(&self) -> &Postgres {
        &self.db
    }

    /// The chunk store in this database, creating its table (and the pgvector extension)
    /// if needed.
    pub async fn chunks(&self) -> Result<PostgresChunks> {
        PostgresChunks::open(self.db.clone()).await.map_err(|e| {
            Error::invalid_input(format!(
                "store.database_url: {} (or set store.chunks_in_database: false)",
                e.message()
            ))
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.db.client().await
    }

    /// The JSON bodies (first column) of the rows `sql` returns, decoded.
    async fn json_rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>> {
        let rows = self.client().await?.query(sql, params).await.map_err(pg)?;
        rows.iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(json_err))
            .collect()
    }

    /// The JSON body of the row `sql` returns, if there is one.
    async fn json_row<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<T>> {
        let row = self
            .client()
            .await?
            .query_opt(sql, params)
            .await
            .map_err(pg)?;
        row.map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(json_err))
            .transpose()
    }
}

fn session_row(r: &tokio_postgres::Row) -> SessionInfo {
    SessionInfo {
        id: r.get(0),
        app: r.get(1),
        title: r.get(2),
        created_at: r.get(3),
        updated_at: r.get(4),
        messages: r.get::<_, i64>(5) as u64,
    }
}

const SESSION_COLS: &str = "s.id, s.app, s.title, s.created_at, s.updated_at, \
    (SELECT COUNT(*) FROM messages m WHERE m.tenant = s.tenant AND m.session_id = s.id)";

impl Store for PostgresStore {
    fn create_session<'a>(
        &'a self,
        tenant: &'a str,
        app: &'a str,
    ) -> BoxFuture<'a, Result<SessionInfo>> {
        Box::pin(async move {
            let now = now_ms();
            let id = uuid::Uuid::new_v4().to_string();
            self.client()
                .await?
                .execute(
                    "INSERT INTO sessions (tenant, id, app, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
                    &[&tenant, &id, &app, &now],
                )
                .await
                .map_err(pg)?;
            Ok(SessionInfo {
                id,
                app: app.to_string(),
                title: String::new(),
                created_at: now,
                updated_at: now,
                messages: 0,
            })
        })
    }

    fn session<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionInfo>>> {
        Box::pin(async move {
            let row = self
                .client()
                .await?
                .query_opt(
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions s WHERE s.tenant = $1 AND s.id = $2"
                    ),
                    &[&tenant, &id],
                )
                .await
                .map_err(pg)?;
            Ok(row.as_ref().map(session_row))
        })
    }

    fn list_sessions<'a>(
        &'a self,
        tenant: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<SessionInfo>>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query(
                    &format!("SELECT {SESSION_COLS} FROM sessions s WHERE s.tenant = $1 ORDER BY s.updated_at DESC, s.id LIMIT $2"),
                    &[&tenant, &i64::from(limit)],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(session_row).collect())
        })
    }

    fn delete_session<'a>(&'a self, tenant: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let n = self
                .client()
                .await?
                .execute(
                    "DELETE FROM sessions WHERE tenant = $1 AND id = $2",
                    &[&tenant, &id],
                )
                .await
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn messages<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        Box::pin(async move {
            self.json_rows(
                "SELECT body FROM (SELECT seq, body FROM messages WHERE tenant = $1 AND session_id = $2 \
                 ORDER BY seq DESC LIMIT $3) t ORDER BY seq",
                &[&tenant, &id, &i64::from(limit)],
            )
            .await
        })
    }

    fn append_turn<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        messages: &'a [Message],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let bodies = messages
                .iter()
                .map(|m| serde_json::to_string(m).map_err(json_err))
                .collect::<Result<Vec<_>>>()?;
            let title = super::title_of(messages);
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg)?;
            // Lock the session row: two concurrent turns of one session get distinct seqs.
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM sessions WHERE tenant = $1 AND id = $2 FOR UPDATE",
                    &[&tenant, &id],
                )
                .await
                .map_err(pg)?;
            if exists.is_none() {
                return Err(Error::invalid_input(format!("no session {id}")));
            }
            let next: i64 = tx
                .query_one("SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE tenant = $1 AND session_id = $2", &[&tenant, &id])
                .await
                .map_err(pg)?
                .get(0);
            for (i, body) in bodies.iter().enumerate() {
                tx.execute(
                    "INSERT INTO messages (tenant, session_id, seq, body) VALUES ($1, $2, $3, $4)",
                    &[&tenant, &id, &(next + i as i64), body],
                )
                .await
                .map_err(pg)?;
            }
            tx.execute(
                "UPDATE sessions SET updated_at = $3, title = CASE WHEN title = '' THEN $4 ELSE title END \
                 WHERE tenant = $1 AND id = $2",
                &[&tenant, &id, &now_ms(), &title],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)
        })
    }

    fn create_kb<'a>(&'a self, tenant: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let n = self
                .client()
                .await?
                .execute(
                    "INSERT INTO knowledge_bases (tenant, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&tenant, &name, &now_ms()],
                )
                .await
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn list_kbs<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Vec<KnowledgeBase>>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT k.name, k.created_at, (SELECT COUNT(*) FROM kb_documents d \
                     WHERE d.tenant = k.tenant AND d.kb = k.name) FROM knowledge_bases k \
                     WHERE k.tenant = $1 ORDER BY k.name",
                    &[&tenant],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| KnowledgeBase {
                    name: r.get(0),
                    created_at: r.get(1),
                    documents: r.get::<_, i64>(2) as u64,
                })
                .collect())
        })
    }

    fn delete_kb<'a>(&'a self, tenant: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let n = self
                .client()
                .await?
                .execute(
                    "DELETE FROM knowledge_bases WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn put_document<'a>(
        &'a self,
        tenant: &'a str,
        kb: &'a str,
        doc: &'a KbDocument,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "INSERT INTO kb_documents (tenant, kb, source, content_hash, chunks, bytes, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, kb, source) DO UPDATE SET \
                     content_hash = excluded.content_hash, chunks = excluded.chunks, bytes = excluded.bytes, \
                     updated_at = excluded.updated_at",
                    &[&tenant, &kb, &doc.source, &doc.content_hash, &(doc.chunks as i64), &(doc.bytes as i64), &doc.updated_at],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn list_documents<'a>(
        &'a self,
        tenant: &'a str,
        kb: &'a str,
    ) -> BoxFuture<'a, Result<Vec<KbDocument>>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT source, content_hash, chunks, bytes, updated_at FROM kb_documents \
                     WHERE tenant = $1 AND kb = $2 ORDER BY source",
                    &[&tenant, &kb],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| KbDocument {
                    source: r.get(0),
                    content_hash: r.get(1),
                    chunks: r.get::<_, i64>(2) as u64,
                    bytes: r.get::<_, i64>(3) as u64,
                    updated_at: r.get(4),
                })
                .collect())
        })
    }

    fn delete_document<'a>(
        &'a self,
        tenant: &'a str,
        kb: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let n = self
                .client()
                .await?
                .execute(
                    "DELETE FROM kb_documents WHERE tenant = $1 AND kb = $2 AND source = $3",
                    &[&tenant, &kb, &source],
                )
                .await
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn put_runs(&self, runs: Vec<RunRow>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg)?;
            let st = tx
                .prepare(
                    "INSERT INTO runs (tenant, id, started_at, body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant, id) DO UPDATE SET started_at = excluded.started_at, body = excluded.body",
                )
                .await
                .map_err(pg)?;
            for r in &runs {
                tx.execute(&st, &[&r.tenant, &r.id, &r.started_at, &r.body])
                    .await
                    .map_err(pg)?;
            }
            tx.commit().await.map_err(pg)
        })
    }

    fn list_runs<'a>(
        &'a self,
        tenant: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        Box::pin(async move {
            self.json_rows(
                "SELECT body FROM runs WHERE tenant = $1 ORDER BY started_at DESC, id LIMIT $2",
                &[&tenant, &i64::from(limit)],
            )
            .await
        })
    }

    fn run<'a>(&'a self, tenant: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        Box::pin(async move {
            self.json_row(
                "SELECT body FROM runs WHERE tenant = $1 AND id = $2",
                &[&tenant, &id],
            )
            .await
        })
    }

    fn put_interrupted<'a>(
        &'a self,
        tenant: &'a str,
        run: &'a InterruptedRun,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let body = serde_json::to_string(run).map_err(json_err)?;
            self.client()
                .await?
                .execute(
                    "INSERT INTO interrupted_runs (tenant, id, created_at, body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant, id) DO UPDATE SET created_at = excluded.created_at, body = excluded.body",
                    &[&tenant, &run.id, &run.created_at, &body],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn list_interrupted<'a>(
        &'a self,
        tenant: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<InterruptedRun>>> {
        Box::pin(async move {
            self.json_rows(
                "SELECT body FROM interrupted_runs WHERE tenant = $1 \
                 ORDER BY created_at DESC, id LIMIT $2",
                &[&tenant, &i64::from(limit)],
            )
            .await
        })
    }

    fn interrupted<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InterruptedRun>>> {
        Box::pin(async move {
            self.json_row(
                "SELECT body FROM interrupted_runs WHERE tenant = $1 AND id = $2",
                &[&tenant, &id],
            )
            .await
        })
    }

    fn expire_interrupted(&self, before_ms: i64) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query(
                    "DELETE FROM interrupted_runs WHERE created_at < $1 RETURNING id",
                    &[&before_ms],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn take_interrupted<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InterruptedRun>>> {
        Box::pin(async move {
            self.json_row(
                "DELETE FROM interrupted_runs WHERE tenant = $1 AND id = $2 RETURNING body",
                &[&tenant, &id],
            )
            .await
        })
    }

    fn put_job<'a>(&'a self, tenant: &'a str, job: &'a JobStatus) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let body = serde_json::to_string(job).map_err(json_err)?;
            self.client()
                .await?
                .execute(
                    "INSERT INTO ingest_jobs (tenant, id, updated_at, body) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant, id) DO UPDATE SET updated_at = excluded.updated_at, body = excluded.body",
                    &[&tenant, &job.id, &now_ms(), &body],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn job<'a>(&'a self, tenant: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<JobStatus>>> {
        Box::pin(async move {
            self.json_row(
                "SELECT body FROM ingest_jobs WHERE tenant = $1 AND id = $2",
                &[&tenant, &id],
            )
            .await
        })
    }

    fn expire_jobs(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "DELETE FROM ingest_jobs WHERE updated_at < $1",
                    &[&before_ms],
                )
                .await
                .map_err(pg)
        })
    }

    fn expire_runs(&self, before_ms: i64, keep: u64) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let client = self.client().await?;
            let mut n = client
                .execute(super::EXPIRE_RUNS_BEFORE, &[&before_ms])
                .await
                .map_err(pg)?;
            if keep > 0 {
                let keep = i64::try_from(keep - 1).unwrap_or(i64::MAX);
                n += client
                    .execute(super::EXPIRE_RUNS_BEYOND, &[&keep])
                    .await
                    .map_err(pg)?;
            }
            Ok(n)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute("SELECT 1", &[])
                .await
                .map_err(pg)?;
            Ok(())
        })
    }
}
