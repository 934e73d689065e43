//! The SQLite store: one file under the data dir, WAL, migrations by `user_version`,
//! statements on tokio's blocking pool.

use std::path::Path;
use std::sync::{Arc, Mutex};

use eino::schema::Message;
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;

use super::{
    json_err, now_ms, InterruptedRun, JobStatus, KbDocument, KnowledgeBase, RunRecord, RunRow,
    SessionInfo, Store,
};

use super::MIGRATIONS;

/// Sessions, knowledge bases and runs in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> Error {
    let kind = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            ErrorKind::Transient
        }
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("database: {e}")).with_source(e)
}

/// The JSON bodies (first column) of the rows `sql` returns, decoded.
fn json_rows<T: DeserializeOwned>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>> {
    let mut st = c.prepare_cached(sql).map_err(db)?;
    let rows = st
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(db)?;
    let mut out = Vec::new();
    for body in rows {
        out.push(serde_json::from_str(&body.map_err(db)?).map_err(json_err)?);
    }
    Ok(out)
}

/// The JSON body of the row `sql` returns, if there is one.
fn json_row<T: DeserializeOwned>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>> {
    let body: Option<String> = c
        .prepare_cached(sql)
        .and_then(|mut st| st.query_row(params, |r| r.get(0)).optional())
        .map_err(db)?;
    body.map(|b| serde_json::from_str(&b).map_err(json_err))
        .transpose()
}

impl SqliteStore {
    /// Open (or create) the database at `path` and run pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::internal(format!("cannot create {}: {e}", dir.display())).with_source(e)
            })?;
        }
        let mut conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; \
             PRAGMA busy_timeout=5000;",
        )
        .map_err(db)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Self> {
        let mut conn = Connection::open_in_memory().map_err(db)?;
        conn.execute_batch("PRAGMA foreign_keys=ON;").map_err(db)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> BoxFuture<'a, Result<T>> {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut c)
            })
            .await
            .map_err(|e| Error::internal(format!("database task failed: {e}")))?
        })
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let done: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    let done = usize::try_from(done).unwrap_or(usize::MAX);
    if done > MIGRATIONS.len() {
        return Err(Error::internal(format!(
            "the database has schema version {done}, newer than this binary's {}",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(sql).map_err(db)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(())
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: r.get(0)?,
        app: r.get(1)?,
        title: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
        messages: r.get::<_, i64>(5)? as u64,
    })
}

const SESSION_COLS: &str = "s.id, s.app, s.title, s.created_at, s.updated_at, \
    (SELECT COUNT(*) FROM messages m WHERE m.tenant = s.tenant AND m.session_id = s.id)";

impl Store for SqliteStore {
    fn create_session<'a>(
        &'a self,
        tenant: &'a str,
        app: &'a str,
    ) -> BoxFuture<'a, Result<SessionInfo>> {
        let (tenant, app) = (tenant.to_string(), app.to_string());
        self.with(move |c| {
            let now = now_ms();
            let id = uuid::Uuid::new_v4().to_string();
            c.execute(
                "INSERT INTO sessions (tenant, id, app, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![tenant, id, app, now],
            )
            .map_err(db)?;
            Ok(SessionInfo { id, app, title: String::new(), created_at: now, updated_at: now, messages: 0 })
        })
    }

    fn session<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionInfo>>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {SESSION_COLS} FROM sessions s WHERE s.tenant = ?1 AND s.id = ?2"),
                params![tenant, id],
                session_row,
            )
            .optional()
            .map_err(db)
        })
    }

    fn list_sessions<'a>(
        &'a self,
        tenant: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<SessionInfo>>> {
        let tenant = tenant.to_string();
        self.with(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLS} FROM sessions s WHERE s.tenant = ?1 \
                     ORDER BY s.updated_at DESC, s.id LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = st
                .query_map(params![tenant, limit], session_row)
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
    }

    fn delete_session<'a>(&'a self, tenant: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM sessions WHERE tenant = ?1 AND id = ?2",
                    params![tenant, id],
                )
                .map_err(db)?;
            Ok(n > 0)
        })
    }

    fn messages<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with(move |c| {
            json_rows(
                c,
                "SELECT body FROM (SELECT seq, body FROM messages WHERE tenant = ?1 AND session_id = ?2 \
                 ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
                params![tenant, id, limit],
            )
        })
    }

    fn append_turn<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        messages: &'a [Message],
    ) -> BoxFuture<'a, Result<()>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        let bodies: Result<Vec<String>> = messages
            .iter()
            .map(|m| serde_json::to_string(m).map_err(json_err))
            .collect();
        let title = super::title_of(messages);
        self.with(move |c| {
            let bodies = bodies?;
            let tx = c.transaction().map_err(db)?;
            let next: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE tenant = ?1 AND session_id = ?2",
                    params![tenant, id],
                    |r| r.get(0),
                )
                .map_err(db)?;
            for (i, body) in bodies.iter().enumerate() {
                tx.execute(
                    "INSERT INTO messages (tenant, session_id, seq, body) VALUES (?1, ?2, ?3, ?4)",
                    params![tenant, id, next + i as i64, body],
                )
                .map_err(db)?;
            }
            let n = tx
                .execute(
                    "UPDATE sessions SET updated_at = ?3, title = CASE WHEN title = '' THEN ?4 ELSE title END \
                     WHERE tenant = ?1 AND id = ?2",
                    params![tenant, id, now_ms(), title],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(Error::invalid_input(format!("no session {id}")));
            }
            tx.commit().map_err(db)
        })
    }

    fn create_kb<'a>(&'a self, tenant: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        let (tenant, name) = (tenant.to_string(), name.to_string());
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT OR IGNORE INTO knowledge_bases (tenant, name, created_at) VALUES (?1, ?2, ?3)",
                    params![tenant, name, now_ms()],
                )
                .map_err(db)?;
            Ok(n > 0)
        })
    }

    fn list_kbs<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Vec<KnowledgeBase>>> {
        let tenant = tenant.to_string();
        self.with(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT k.name, k.created_at, (SELECT COUNT(*) FROM kb_documents d \
                     WHERE d.tenant = k.tenant AND d.kb = k.name) FROM knowledge_bases k \
                     WHERE k.tenant = ?1 ORDER BY k.name",
                )
                .map_err(db)?;
            let rows = st
                .query_map(params![tenant], |r| {
                    Ok(KnowledgeBase {
                        name: r.get(0)?,
                        created_at: r.get(1)?,
                        documents: r.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
    }

    fn delete_kb<'a>(&'a self, tenant: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        let (tenant, name) = (tenant.to_string(), name.to_string());
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM knowledge_bases WHERE tenant = ?1 AND name = ?2",
                    params![tenant, name],
                )
                .map_err(db)?;
            Ok(n > 0)
        })
    }

    fn put_document<'a>(
        &'a self,
        tenant: &'a str,
        kb: &'a str,
        doc: &'a KbDocument,
    ) -> BoxFuture<'a, Result<()>> {
        let (tenant, kb, doc) = (tenant.to_string(), kb.to_string(), doc.clone());
        self.with(move |c| {
            c.execute(
                "INSERT INTO kb_documents (tenant, kb, source, content_hash, chunks, bytes, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tenant, kb, source) DO UPDATE SET \
                 content_hash = excluded.content_hash, chunks = excluded.chunks, bytes = excluded.bytes, \
                 updated_at = excluded.updated_at",
                params![tenant, kb, doc.source, doc.content_hash, doc.chunks as i64, doc.bytes as i64, doc.updated_at],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn list_documents<'a>(
        &'a self,
        tenant: &'a str,
        kb: &'a str,
    ) -> BoxFuture<'a, Result<Vec<KbDocument>>> {
        let (tenant, kb) = (tenant.to_string(), kb.to_string());
        self.with(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT source, content_hash, chunks, bytes, updated_at FROM kb_documents \
                     WHERE tenant = ?1 AND kb = ?2 ORDER BY source",
                )
                .map_err(db)?;
            let rows = st
                .query_map(params![tenant, kb], |r| {
                    Ok(KbDocument {
                        source: r.get(0)?,
                        content_hash: r.get(1)?,
                        chunks: r.get::<_, i64>(2)? as u64,
                        bytes: r.get::<_, i64>(3)? as u64,
                        updated_at: r.get(4)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
    }

    fn delete_document<'a>(
        &'a self,
        tenant: &'a str,
        kb: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        let (tenant, kb, source) = (tenant.to_string(), kb.to_string(), source.to_string());
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM kb_documents WHERE tenant = ?1 AND kb = ?2 AND source = ?3",
                    params![tenant, kb, source],
                )
                .map_err(db)?;
            Ok(n > 0)
        })
    }

    fn put_runs(&self, rows: Vec<RunRow>) -> BoxFuture<'_, Result<()>> {
        self.with(move |c| {
            let tx = c.transaction().map_err(db)?;
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO runs (tenant, id, started_at, body) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(db)?;
                for r in rows {
                    st.execute(params![r.tenant, r.id, r.started_at, r.body])
                        .map_err(db)?;
                }
            }
            tx.commit().map_err(db)
        })
    }

    fn list_runs<'a>(
        &'a self,
        tenant: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<RunRecord>>> {
        let tenant = tenant.to_string();
        self.with(move |c| {
            json_rows(
                c,
                "SELECT body FROM runs WHERE tenant = ?1 ORDER BY started_at DESC, id LIMIT ?2",
                params![tenant, limit],
            )
        })
    }

    fn run<'a>(&'a self, tenant: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with(move |c| {
            json_row(
                c,
                "SELECT body FROM runs WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
            )
        })
    }

    fn put_interrupted<'a>(
        &'a self,
        tenant: &'a str,
        run: &'a InterruptedRun,
    ) -> BoxFuture<'a, Result<()>> {
        let row = serde_json::to_string(run)
            .map_err(json_err)
            .map(|body| (tenant.to_string(), run.id.clone(), run.created_at, body));
        self.with(move |c| {
            let (tenant, id, at, body) = row?;
            c.prepare_cached(
                "INSERT OR REPLACE INTO interrupted_runs (tenant, id, created_at, body) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![tenant, id, at, body]))
            .map_err(db)?;
            Ok(())
        })
    }

    fn list_interrupted<'a>(
        &'a self,
        tenant: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<InterruptedRun>>> {
        let tenant = tenant.to_string();
        self.with(move |c| {
            json_rows(
                c,
                "SELECT body FROM interrupted_runs WHERE tenant = ?1 \
                 ORDER BY created_at DESC, id LIMIT ?2",
                params![tenant, limit],
            )
        })
    }

    fn interrupted<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InterruptedRun>>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with(move |c| {
            json_row(
                c,
                "SELECT body FROM interrupted_runs WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
            )
        })
    }

    fn expire_interrupted(&self, before_ms: i64) -> BoxFuture<'_, Result<Vec<String>>> {
        self.with(move |c| {
            let mut st = c
                .prepare_cached("DELETE FROM interrupted_runs WHERE created_at < ?1 RETURNING id")
                .map_err(db)?;
            let ids = st
                .query_map(params![before_ms], |r| r.get::<_, String>(0))
                .map_err(db)?;
            ids.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
    }

    fn put_job<'a>(&'a self, tenant: &'a str, job: &'a JobStatus) -> BoxFuture<'a, Result<()>> {
        let row = serde_json::to_string(job)
            .map_err(json_err)
            .map(|body| (tenant.to_string(), job.id.clone(), body));
        self.with(move |c| {
            let (tenant, id, body) = row?;
            c.prepare_cached(
                "INSERT OR REPLACE INTO ingest_jobs (tenant, id, updated_at, body) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![tenant, id, now_ms(), body]))
            .map_err(db)?;
            Ok(())
        })
    }

    fn job<'a>(&'a self, tenant: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<JobStatus>>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with(move |c| {
            json_row(
                c,
                "SELECT body FROM ingest_jobs WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
            )
        })
    }

    fn expire_jobs(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>> {
        self.with(move |c| {
            let n = c
                .prepare_cached("DELETE FROM ingest_jobs WHERE updated_at < ?1")
                .and_then(|mut st| st.execute(params![before_ms]))
                .map_err(db)?;
            Ok(n as u64)
        })
    }

    fn expire_runs(&self, before_ms: i64, keep: u64) -> BoxFuture<'_, Result<u64>> {
        self.with(move |c| {
            let sql = |q: &str| q.replace('$', "?");
            let mut n = c
                .prepare_cached(&sql(super::EXPIRE_RUNS_BEFORE))
                .and_then(|mut st| st.execute(params![before_ms]))
                .map_err(db)?;
            if keep > 0 {
                let keep = i64::try_from(keep - 1).unwrap_or(i64::MAX);
                n += c
                    .prepare_cached(&sql(super::EXPIRE_RUNS_BEYOND))
                    .and_then(|mut st| st.execute(params![keep]))
                    .map_err(db)?;
            }
            Ok(n as u64)
        })
    }

    fn take_interrupted<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InterruptedRun>>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.with(move |c| {
            json_row(
                c,
                "DELETE FROM interrupted_runs WHERE tenant = ?1 AND id = ?2 RETURNING body",
                params![tenant, id],
            )
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
    }
}
