//! The shared state of the service, built once at start from the configuration.

use std::collections::BTreeMap;
use std::sync::Arc;

use eino::component::ChatModel;
use eino::compose::{CheckpointStore, Compiled};
use eino::schema::Message;
use eino::{Error, Result};
use eino_rag::{Bm25Index, ChunkStore, HnswConfig, LocalChunks, VectorIndex};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{AppParts, Application};
use crate::auth::{Auth, FailureLimiter, Limiter};
use crate::config::Config;
use crate::knowledge::{IngestLimits, Knowledge};
use crate::registry::Registry;
use crate::resilience::FallbackModel;
use crate::store::{PostgresStore, SqliteStore, Store};

/// The model of application `id`, with its fallbacks.
fn app_model(config: &Config, registry: &Registry, id: &str) -> Result<FallbackModel> {
    let app = &config.applications[id];
    let chain = std::iter::once(&app.model)
        .chain(&app.fallbacks)
        .map(|m| {
            registry.models.get(m).cloned().ok_or_else(|| {
                Error::invalid_input(format!("applications.{id}: model {m} is not loaded"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FallbackModel::new(chain))
}

/// Everything a handler needs: one pointer to the [`SharedState`], so the per-request
/// clones (axum clones the state for every handler and middleware) touch one reference
/// count instead of one per field.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;
    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The state's parts.
pub struct SharedState {
    /// The configuration it was built from.
    pub config: Arc<Config>,
    /// Models and embedders.
    pub registry: Arc<Registry>,
    /// Applications by id.
    pub apps: Arc<BTreeMap<String, Arc<Application>>>,
    /// Sessions, knowledge bases, runs.
    pub store: Arc<dyn Store>,
    /// The background writer of run traces.
    pub runs: crate::runs::RunWriter,
    /// Raw models as one-node chains (no tools bound), compiled once.
    pub raw_models: Arc<BTreeMap<String, Compiled<Vec<Message>, Message>>>,
    /// Checkpoints of interrupted runs, in the store's database.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// Knowledge bases.
    pub knowledge: Knowledge,
    /// Credentials.
    pub auth: Auth,
    /// Rate limits, if configured.
    pub limiter: Option<Limiter>,
    /// Failed authentications per client address, if limited.
    pub auth_failures: Option<FailureLimiter>,
    /// Response cache, if enabled.
    pub cache: Option<crate::cache::ResponseCache>,
    /// `/metrics` renderer.
    pub metrics: PrometheusHandle,
    /// Unix seconds at start (`created` of `/v1/models`).
    pub started_unix: i64,
    /// Cancelled when shutdown begins; `/ready` then answers 503.
    pub shutdown: CancellationToken,
}

impl SharedState {
    /// What answers `model` (an application or a raw model id) with `tools` bound.
    pub fn resolve(
        &self,
        model: &str,
        tools: Vec<eino::schema::ToolInfo>,
    ) -> crate::error::ApiResult<crate::dispatch::Target> {
        let targets = crate::dispatch::Targets {
            apps: &self.apps,
            registry: &self.registry,
            raw_models: &self.raw_models,
        };
        crate::dispatch::resolve(&targets, model, tools)
    }
}

impl AppState {
    /// Build the state: open the store and index under the data dir, use `registry`'s
    /// models, compile the applications.
    pub async fn build(config: Config, registry: Registry) -> Result<Self> {
        let data = config.server.data_dir.clone();
        private_dir(&data).map_err(|e| {
            Error::invalid_input(format!("server.data_dir {}: {e}", data.display())).with_source(e)
        })?;
        let db = data.join("eino.db");
        // Checkpoints live in the same database as everything else, so with PostgreSQL any
        // replica resumes a run another one interrupted.
        let (store, checkpoints, chunks): (Arc<dyn Store>, Arc<dyn CheckpointStore>, _) =
            match &config.store.database_url {
                Some(url) => {
                    let pg = PostgresStore::connect(url, config.store.max_connections).await?;
                    let chunks: Option<Arc<dyn ChunkStore>> = if config.store.chunks_in_database {
                        Some(Arc::new(pg.chunks().await?))
                    } else {
                        None
                    };
                    let checkpoints =
                        eino_postgres::PostgresCheckpointStore::open(pg.database().clone()).await?;
                    (Arc::new(pg), Arc::new(checkpoints), chunks)
                }
                None => {
                    let store = SqliteStore::open(&db)?;
                    private_files(&data);
                    (
                        Arc::new(store),
                        Arc::new(eino_sqlite::SqliteCheckpointStore::open(&db).await?),
                        None,
                    )
                }
            };
        let chunks = match chunks {
            Some(c) => c,
            None => local_chunks(&data).await?,
        };
        let kb_embedder = config
            .applications
            .values()
            .find(|a| !a.knowledge_bases.is_empty())
            .map(|a| a.embedder.clone())
            .or_else(|| registry.embedders.keys().next().cloned())
            .and_then(|id| registry.embedders.get(&id).cloned());
        let knowledge = Knowledge::with_limits(
            store.clone(),
            chunks,
            kb_embedder,
            IngestLimits::from_config(&config.limits),
        );
        let tools = crate::tools::build_all(&config.tools, &knowledge).await?;
        let mut apps = BTreeMap::new();
        for (id, app) in &config.applications {
            // A sub-agent's tool needing approval stops the run too.
            let interruptible = std::iter::once(app)
                .chain(
                    app.sub_agents
                        .iter()
                        .filter_map(|s| config.applications.get(s)),
                )
                .flat_map(|a| &a.tools)
                .any(|t| {
                    let entry = t.split_once('/').map_or(t.as_str(), |(e, _)| e);
                    config.tools[entry].approval
                });
            let agent = if app.agent.is_multi_agent() {
                let sources = crate::agents::Sources {
                    model: &|app_id: &str| {
                        Ok(Arc::new(app_model(&config, &registry, app_id)?) as Arc<dyn ChatModel>)
                    },
                    tools: &|app_id: &str| {
                        let a = &config.applications[app_id];
                        crate::tools::pick(app_id, &a.tools, &tools)
                    },
                };
                Some(crate::agents::build(&config, id, &sources)?)
            } else {
                None
            };
            let parts = AppParts {
                model: app_model(&config, &registry, id)?,
                knowledge: knowledge.clone(),
                tools: crate::tools::pick(id, &app.tools, &tools)?,
                agent,
                checkpoints: interruptible.then(|| checkpoints.clone()),
            };
            let built = Application::build(id, app.clone(), parts)?;
            apps.insert(id.clone(), Arc::new(built));
        }
        let auth =
            Auth::from_config(&config.auth).map_err(|e| Error::invalid_input(e.to_string()))?;
        let redis = match &config.redis.url {
            Some(url) => Some(crate::redis::Redis::connect(url, &config.redis.key_prefix).await?),
            None => None,
        };
        let limiter = Limiter::from_config(&config.limits, redis.as_ref());
        let auth_failures = FailureLimiter::from_config(&config.limits);
        static METRICS_HANDLER: std::sync::Once = std::sync::Once::new();
        METRICS_HANDLER.call_once(|| {
            let handler: Arc<dyn eino::callbacks::Handler> =
                Arc::new(crate::trace::MetricsHandler::default());
            eino::callbacks::append_global_handlers([handler]);
        });
        let mut raw_models = BTreeMap::new();
        for (id, m) in &registry.models {
            raw_models.insert(
                id.clone(),
                crate::dispatch::raw_chain(id, Arc::new(FallbackModel::new(vec![m.clone()])))?,
            );
        }
        let cache = crate::cache::ResponseCache::from_config(&config.cache, redis.as_ref());
        let runs = if config.telemetry.record_runs {
            crate::runs::RunWriter::spawn(
                store.clone(),
                config.telemetry.record_runs_sample,
                config.telemetry.runs_max_trace_bytes,
                std::time::Duration::from_millis(config.telemetry.runs_flush_ms),
            )
        } else {
            crate::runs::RunWriter::disabled()
        };
        Ok(Self(Arc::new(SharedState {
            config: Arc::new(config),
            registry: Arc::new(registry),
            apps: Arc::new(apps),
            runs,
            raw_models: Arc::new(raw_models),
            store,
            checkpoints,
            knowledge,
            auth,
            limiter,
            auth_failures,
            cache,
            metrics: crate::metrics::install(),
            started_unix: crate::store::now_ms() / 1000,
            shutdown: CancellationToken::new(),
        })))
    }
}

/// The in-process chunk store under the data dir: vectors in `index/` (an HNSW graph for
/// knowledge bases past 20 000 chunks, built in the background), BM25 keywords in
/// `keywords/` (loading them reads files, so off the async threads).
async fn local_chunks(data: &std::path::Path) -> Result<Arc<dyn ChunkStore>> {
    let (dir, kw_dir) = (data.join("index"), data.join("keywords"));
    let chunks = tokio::task::spawn_blocking(move || -> Result<_> {
        let vectors = VectorIndex::open(dir)?.with_hnsw(HnswConfig::default())?;
        Ok(LocalChunks::new(vectors).with_keywords(Bm25Index::open(kw_dir)?))
    })
    .await
    .map_err(|e| Error::internal(format!("index load task: {e}")))??;
    Ok(Arc::new(chunks))
}

/// Create the data directory readable by this user only (0700): it holds every tenant's
/// sessions, documents and traces. An existing one is left as it is (it may be a folder
/// the operator chose to share), with a warning when others can read it.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if dir.is_dir() {
            let mode = std::fs::metadata(dir)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777),
                    "the data directory is open to other users; chmod 700 it");
            }
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// The database files (SQLite creates them with the umask's mode, often 0644) readable by
/// this user only (0600).
fn private_files(dir: &std::path::Path) {
    #[cfg(unix)]
    for name in ["eino.db", "eino.db-wal", "eino.db-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        if path.exists() {
            if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot make a database file private");
            }
        }
    }
}
