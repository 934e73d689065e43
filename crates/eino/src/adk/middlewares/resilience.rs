//! Retries and failover for the model inside an agent's loop (Eino's `ModelRetryConfig`
//! and `ModelFailoverConfig`), as middlewares that wrap the model.
//!
//! Only the call that opens a stream is retried or failed over: once chunks reached the
//! caller, an error mid-stream is reported (re-sending would repeat text).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::adk::AgentMiddleware;
use crate::component::{ChatModel, ChatOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{Message, StreamReader, ToolInfo};

/// Retries retryable model errors ([`Error::is_retryable`]) with exponential backoff,
/// honouring a provider's retry-after hint.
#[derive(Debug, Clone)]
pub struct ModelRetry {
    /// Retries after the first attempt (default 3).
    pub max_retries: u32,
    /// First wait (default 200 ms), doubled each retry.
    pub base_delay: Duration,
    /// Longest wait (default 5 s).
    pub max_delay: Duration,
}

impl Default for ModelRetry {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl ModelRetry {
    fn delay(&self, attempt: u32, e: &Error) -> Duration {
        let backoff = self.base_delay.saturating_mul(2u32.saturating_pow(attempt));
        e.retry_after().unwrap_or(backoff).min(self.max_delay)
    }
}

struct Retrying {
    inner: Arc<dyn ChatModel>,
    policy: ModelRetry,
}

impl Retrying {
    async fn attempt<T>(&self, call: impl Fn() -> BoxFuture<'static, Result<T>>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if e.is_retryable() && attempt < self.policy.max_retries => {
                    tokio::time::sleep(self.policy.delay(attempt, &e)).await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

impl ChatModel for Retrying {
    fn generate<'a>(
        &'a self,
        messages: &'a [Message],
        options: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move {
            let (m, o) = (messages.to_vec(), options.clone());
            let inner = self.inner.clone();
            self.attempt(move || {
                let (inner, m, o) = (inner.clone(), m.clone(), o.clone());
                Box::pin(async move { inner.generate(&m, &o).await })
            })
            .await
        })
    }
    fn stream<'a>(
        &'a self,
        messages: &'a [Message],
        options: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        Box::pin(async move {
            let (m, o) = (messages.to_vec(), options.clone());
            let inner = self.inner.clone();
            self.attempt(move || {
                let (inner, m, o) = (inner.clone(), m.clone(), o.clone());
                Box::pin(async move { inner.stream(&m, &o).await })
            })
            .await
        })
    }
    fn with_tools(&self, tools: Vec<ToolInfo>) -> Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(Retrying {
            inner: self.inner.with_tools(tools)?,
            policy: self.policy.clone(),
        }))
    }
}

impl AgentMiddleware for ModelRetry {
    fn wrap_model(&self, model: Arc<dyn ChatModel>) -> Arc<dyn ChatModel> {
        Arc::new(Retrying {
            inner: model,
            policy: self.clone(),
        })
    }
}

/// Tries alternate models when the agent's model fails: the model that answered last is
/// tried first, then the others in order. Errors that another model cannot fix (bad input,
/// cancellation, interrupts) are returned at once.
#[derive(Clone)]
pub struct ModelFailover {
    alternates: Vec<Arc<dyn ChatModel>>,
}

impl std::fmt::Debug for ModelFailover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFailover")
            .field("alternates", &self.alternates.len())
            .finish()
    }
}

impl ModelFailover {
    /// Fail over to `alternates` (in this order) after the agent's own model.
    pub fn new(alternates: Vec<Arc<dyn ChatModel>>) -> Self {
        Self { alternates }
    }
}

fn worth_failing_over(e: &Error) -> bool {
    !matches!(
        e.kind(),
        ErrorKind::InvalidInput | ErrorKind::Cancelled | ErrorKind::Interrupted
    )
}

struct FailingOver {
    models: Vec<Arc<dyn ChatModel>>,
    last_good: Arc<AtomicUsize>,
}

impl FailingOver {
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let first = self
            .last_good
            .load(Ordering::Relaxed)
            .min(self.models.len() - 1);
        std::iter::once(first).chain((0..self.models.len()).filter(move |i| *i != first))
    }

    async fn each<'a, T>(
        &'a self,
        call: impl Fn(&'a Arc<dyn ChatModel>) -> BoxFuture<'a, Result<T>>,
    ) -> Result<T> {
        let mut last = None;
        for i in self.order() {
            match call(&self.models[i]).await {
                Ok(v) => {
                    self.last_good.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) if worth_failing_over(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::internal("failover without models")))
    }
}

impl ChatModel for FailingOver {
    fn generate<'a>(
        &'a self,
        messages: &'a [Message],
        options: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(self.each(move |m| m.generate(messages, options)))
    }
    fn stream<'a>(
        &'a self,
        messages: &'a [Message],
        options: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        Box::pin(self.each(move |m| m.stream(messages, options)))
    }
    fn with_tools(&self, tools: Vec<ToolInfo>) -> Result<Arc<dyn ChatModel>> {
        let models = self
            .models
            .iter()
            .map(|m| m.with_tools(tools.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(FailingOver {
            models,
            last_good: self.last_good.clone(),
        }))
    }
}

impl AgentMiddleware for ModelFailover {
    fn wrap_model(&self, model: Arc<dyn ChatModel>) -> Arc<dyn ChatModel> {
        let mut models = vec![model];
        models.extend(self.alternates.iter().cloned());
        Arc::new(FailingOver {
            models,
            last_good: Arc::new(AtomicUsize::new(0)),
        })
    }
}
