//! One run of an application or model: its id, its trace recorder, and saving the trace
//! (status, timings, tokens) to the store when it ends.

use std::sync::Arc;
use std::time::Instant;

use eino::compose::Context;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{now_ms, RunRecord, Store};
use crate::trace::RunTracer;

/// A run in progress. [`RunGuard::finish`] or [`RunGuard::fail`] records it; a guard
/// dropped without either (the client went away mid-stream) is recorded as `cancelled`.
pub struct RunGuard {
    id: String,
    tenant: String,
    app: String,
    session_id: Option<String>,
    started_at: i64,
    clock: Instant,
    tracer: RunTracer,
    store: Arc<dyn Store>,
    done: bool,
}

impl RunGuard {
    /// Start recording a run of `app` for `caller`.
    pub fn start(state: &AppState, caller: &Caller, app: &str, session_id: Option<String>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: caller.tenant.clone(),
            app: app.to_string(),
            session_id,
            started_at: now_ms(),
            clock: Instant::now(),
            tracer: RunTracer::new(),
            store: state.store.clone(),
            done: false,
        }
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A context that records this run's callbacks.
    pub fn context(&self) -> Context {
        Context::new().with_callbacks(Arc::new(self.tracer.clone()))
    }

    async fn save(&mut self, status: &str, error: Option<String>) {
        self.done = true;
        let trace = self.tracer.finish().await;
        let record = RunRecord {
            id: self.id.clone(),
            app: self.app.clone(),
            session_id: self.session_id.clone(),
            status: status.to_string(),
            started_at: self.started_at,
            duration_ms: self.clock.elapsed().as_millis() as u64,
            prompt_tokens: trace.prompt_tokens,
            completion_tokens: trace.completion_tokens,
            nodes: trace.nodes,
            error,
        };
        metrics::counter!("eino_runs_total", "app" => self.app.clone(), "status" => status.to_string()).increment(1);
        if let Err(e) = self.store.put_run(&self.tenant, &record).await {
            tracing::error!(run = %self.id, error = %e, "cannot save a run trace");
        }
    }

    /// Record the result and turn an error into an API error.
    pub async fn finish<T>(mut self, result: eino::Result<T>) -> Result<T, ApiError> {
        match result {
            Ok(v) => {
                self.save("ok", None).await;
                Ok(v)
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Record a failure; returns its API error.
    pub async fn fail(mut self, e: eino::Error) -> ApiError {
        let status = if e.kind() == eino::ErrorKind::Interrupted {
            "interrupted"
        } else {
            "error"
        };
        self.save(status, Some(e.to_string())).await;
        ApiError::from(e)
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rest = RunGuard {
            id: std::mem::take(&mut self.id),
            tenant: std::mem::take(&mut self.tenant),
            app: std::mem::take(&mut self.app),
            session_id: self.session_id.take(),
            started_at: self.started_at,
            clock: self.clock,
            tracer: self.tracer.clone(),
            store: self.store.clone(),
            done: true,
        };
        rt.spawn(async move {
            rest.save("cancelled", Some("the client disconnected".into()))
                .await
        });
    }
}
