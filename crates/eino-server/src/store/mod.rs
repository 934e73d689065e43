//! Persistence behind one trait: sessions with their messages, knowledge bases and their
//! documents, and run traces, each owned by a tenant. [`SqliteStore`] is the embedded
//! default; every query takes the tenant, so one tenant's rows are invisible to another.

mod postgres;
mod sqlite;

use eino::schema::Message;
use eino::Result;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use eino_postgres::PostgresChunks;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A chat session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// The application it talks to.
    pub app: String,
    /// First user message, shortened.
    pub title: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last turn.
    pub updated_at: i64,
    /// Messages stored.
    pub messages: u64,
}

/// A knowledge base.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KnowledgeBase {
    /// Its name (unique per tenant).
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Documents in it.
    pub documents: u64,
}

/// A document of a knowledge base.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KbDocument {
    /// The uploaded file name (the document's source).
    pub source: String,
    /// Hex SHA-256 of the uploaded bytes.
    pub content_hash: String,
    /// Chunks indexed.
    pub chunks: u64,
    /// Size of the upload.
    pub bytes: u64,
    /// Unix milliseconds of the last (re-)ingestion.
    pub updated_at: i64,
}

/// The trace of one application run. `N` is how its nodes are held: JSON when read back
/// from a store, the tracer's typed records while it is written (serialized once, by the
/// run writer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord<N = serde_json::Value> {
    /// Run id (also the `x-eino-run-id` response header).
    pub id: String,
    /// The application.
    pub app: String,
    /// The session, if the run belonged to one.
    pub session_id: Option<String>,
    /// `ok`, `error` or `interrupted`.
    pub status: String,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Wall time.
    pub duration_ms: u64,
    /// Prompt tokens reported by the model.
    pub prompt_tokens: u64,
    /// Completion tokens reported by the model.
    pub completion_tokens: u64,
    /// The nodes: name, component, start offset, duration, input/output, error.
    pub nodes: N,
    /// The error message when `status` is `error`.
    pub error: Option<String>,
}

/// A JSON (de)serialization failure of a stored row.
fn json_err(e: serde_json::Error) -> eino::Error {
    eino::Error::internal(format!("stored row is not valid JSON: {e}")).with_source(e)
}

/// A run trace as stored: its key and its record as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// The tenant.
    pub tenant: String,
    /// The run id.
    pub id: String,
    /// Unix milliseconds (the listing order).
    pub started_at: i64,
    /// The [`RunRecord`] as JSON.
    pub body: String,
}

impl RunRow {
    /// The row of `tenant`'s `record`.
    pub fn new<N: Serialize>(tenant: &str, record: &RunRecord<N>) -> Result<Self> {
        Ok(Self {
            tenant: tenant.to_string(),
            id: record.id.clone(),
            started_at: record.started_at,
            body: serde_json::to_string(record).map_err(json_err)?,
        })
    }
}

/// A tool call waiting for a person's decision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingCall {
    /// The tool call id (the key of its decision when resuming).
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The model's arguments.
    pub arguments: serde_json::Value,
    /// The node path of the tools node that holds the call (where resume data goes).
    pub path: Vec<String>,
}

/// A run stopped for outside input; its checkpoint (same id) is in the checkpoint store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InterruptedRun {
    /// Run id and checkpoint id.
    pub id: String,
    /// The application.
    pub app: String,
    /// The session the answer belongs to, if any.
    pub session_id: Option<String>,
    /// The user message of the turn, stored with the answer once the run completes.
    pub user_message: Option<Message>,
    /// Unix milliseconds of the (latest) interrupt.
    pub created_at: i64,
    /// The calls waiting for a decision.
    pub pending: Vec<PendingCall>,
}

/// An ingestion job's state, as polled or streamed by clients.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// The knowledge base.
    pub kb: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Counters.
    pub progress: eino_rag::ingest::Progress,
    /// Per file, when done.
    pub outcomes: Vec<(String, eino_rag::ingest::Outcome)>,
    /// Why the job failed as a whole, when it did (its replica stopped, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix milliseconds of the last recorded change or heartbeat.
    #[serde(default)]
    pub updated_at: i64,
}

/// Where the service keeps its data.
pub trait Store: Send + Sync {
    /// A new session of `app`.
    fn create_session<'a>(
        &'a self,
        tenant: &'a str,
        app: &'a str,
    ) -> BoxFuture<'a, Result<SessionInfo>>;
    /// One session.
    fn session<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionInfo>>>;
    /// The newest sessions first.
    fn list_sessions<'a>(
        &'a self,
        tenant: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<SessionInfo>>>;
    /// Delete a session and its messages; false if it did not exist.
    fn delete_session<'a>(&'a self, tenant: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// The last `limit` messages of a session, oldest first.
    fn messages<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Message>>>;
    /// Append one turn's messages (user, then assistant …) in one transaction: all or none.
    fn append_turn<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        messages: &'a [Message],
    ) -> BoxFuture<'a, Result<()>>;

    /// Create a knowledge base; false if it existed.
    fn create_kb<'a>(&'a self, tenant: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// The tenant's knowledge bases.
    fn list_kbs<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Vec<KnowledgeBase>>>;
    /// Delete a knowledge base and its document records; false if it did not exist.
    fn delete_kb<'a>(&'a self, tenant: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// Record (or update) a document of a knowledge base.
    fn put_document<'a>(
        &'a self,
        tenant: &'a str,
        kb: &'a str,
        doc: &'a KbDocument,
    ) -> BoxFuture<'a, Result<()>>;
    /// The documents of a knowledge base.
    fn list_documents<'a>(
        &'a self,
        tenant: &'a str,
        kb: &'a str,
    ) -> BoxFuture<'a, Result<Vec<KbDocument>>>;
    /// Delete a document record; false if it did not exist.
    fn delete_document<'a>(
        &'a self,
        tenant: &'a str,
        kb: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Save run traces `(tenant, run)`, all in one transaction.
    fn put_runs(&self, runs: Vec<RunRow>) -> BoxFuture<'_, Result<()>>;
    /// The newest runs first.
    fn list_runs<'a>(
        &'a self,
        tenant: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<RunRecord>>>;
    /// One run.
    fn run<'a>(&'a self, tenant: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>>;

    /// Save (or replace) an interrupted run.
    fn put_interrupted<'a>(
        &'a self,
        tenant: &'a str,
        run: &'a InterruptedRun,
    ) -> BoxFuture<'a, Result<()>>;
    /// The tenant's interrupted runs, newest first.
    fn list_interrupted<'a>(
        &'a self,
        tenant: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<InterruptedRun>>>;
    /// One interrupted run.
    fn interrupted<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InterruptedRun>>>;
    /// Remove every tenant's interrupted runs recorded before `before_ms`; returns their ids.
    fn expire_interrupted(&self, before_ms: i64) -> BoxFuture<'_, Result<Vec<String>>>;
    /// Remove an interrupted run and return it, atomically: of two callers resuming the
    /// same run, one gets it.
    fn take_interrupted<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InterruptedRun>>>;

    /// Save (or update) an ingestion job's status.
    fn put_job<'a>(&'a self, tenant: &'a str, job: &'a JobStatus) -> BoxFuture<'a, Result<()>>;
    /// One ingestion job.
    fn job<'a>(&'a self, tenant: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<JobStatus>>>;
    /// Remove every tenant's jobs last updated before `before_ms`; returns how many.
    fn expire_jobs(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>>;
    /// Remove every tenant's run traces started before `before_ms`, then all but the
    /// newest `keep` (0: no cap); returns how many.
    fn expire_runs(&self, before_ms: i64, keep: u64) -> BoxFuture<'_, Result<u64>>;

    /// Whether the store answers (for `/ready`).
    fn ping(&self) -> BoxFuture<'_, Result<()>>;
}

/// Schema versions, applied in order by both stores (SQLite records the count in
/// `PRAGMA user_version`, PostgreSQL in `eino_schema`). Plain SQL both accept: `BIGINT`
/// is SQLite's integer affinity.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sessions (
    tenant TEXT NOT NULL, id TEXT NOT NULL, app TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE TABLE messages (
    tenant TEXT NOT NULL, session_id TEXT NOT NULL, seq BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, session_id, seq),
    FOREIGN KEY (tenant, session_id) REFERENCES sessions (tenant, id) ON DELETE CASCADE);
CREATE TABLE knowledge_bases (
    tenant TEXT NOT NULL, name TEXT NOT NULL, created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name));
CREATE TABLE kb_documents (
    tenant TEXT NOT NULL, kb TEXT NOT NULL, source TEXT NOT NULL, content_hash TEXT NOT NULL,
    chunks BIGINT NOT NULL, bytes BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, kb, source),
    FOREIGN KEY (tenant, kb) REFERENCES knowledge_bases (tenant, name) ON DELETE CASCADE);
CREATE TABLE runs (
    tenant TEXT NOT NULL, id TEXT NOT NULL, started_at BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX runs_by_time ON runs (tenant, started_at);
CREATE INDEX sessions_by_time ON sessions (tenant, updated_at);
"#,
    r#"
CREATE TABLE interrupted_runs (
    tenant TEXT NOT NULL, id TEXT NOT NULL, created_at BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX interrupted_by_time ON interrupted_runs (tenant, created_at);
"#,
    r#"
CREATE TABLE ingest_jobs (
    tenant TEXT NOT NULL, id TEXT NOT NULL, updated_at BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE INDEX jobs_by_time ON ingest_jobs (updated_at);
"#,
    r#"
CREATE INDEX runs_by_start ON runs (started_at);
"#,
];

/// The statements of [`Store::expire_runs`], in both SQL dialects' common subset
/// (`$1`/`?1` aside): runs started before a time, then all but the newest N.
pub(crate) const EXPIRE_RUNS_BEFORE: &str = "DELETE FROM runs WHERE started_at < $1";
pub(crate) const EXPIRE_RUNS_BEYOND: &str = "DELETE FROM runs WHERE started_at < \
     (SELECT started_at FROM runs ORDER BY started_at DESC LIMIT 1 OFFSET $1)";

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A session's title: its first user message, shortened.
pub(crate) fn title_of(messages: &[Message]) -> String {
    let first = messages
        .iter()
        .find(|m| m.role == eino::schema::Role::User)
        .map_or("", |m| m.content.as_str());
    let mut t: String = first.chars().take(60).collect();
    if first.chars().count() > 60 {
        t.push('…');
    }
    t
}
