//! Degradation for models: a circuit breaker per model (closed → open after consecutive
//! retryable failures → half-open after a cool-down, one trial call → closed or open
//! again), and [`FallbackModel`], which tries an application's models in order.
//!
//! Retries of one call live in the provider clients (jittered backoff for transient
//! errors); the breaker stops a failing provider from being hammered, the fallback chain
//! answers from the next model meanwhile.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eino::component::{ChatModel, ChatOptions};
use eino::schema::{Message, StreamReader, ToolInfo};
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// One trial call is allowed.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    trial_running: bool,
}

/// A circuit breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// Opens after `threshold` consecutive retryable failures, for `cool_down`.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                opened_at: None,
                trial_running: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state (an open breaker whose cool-down ended reports half-open).
    pub fn state(&self) -> BreakerState {
        let g = self.lock();
        match (g.state, g.opened_at) {
            (BreakerState::Open, Some(t)) if t.elapsed() >= self.cool_down => {
                BreakerState::HalfOpen
            }
            (s, _) => s,
        }
    }

    /// May a call go through now? A half-open breaker lets exactly one trial through.
    pub fn try_acquire(&self) -> bool {
        let mut g = self.lock();
        match g.state {
            BreakerState::Closed => true,
            BreakerState::Open => {
                if g.opened_at.is_some_and(|t| t.elapsed() >= self.cool_down) {
                    g.state = BreakerState::HalfOpen;
                    g.trial_running = true;
                    true
                } else {
                    false
                }
            }
            BreakerState::HalfOpen => {
                if g.trial_running {
                    false
                } else {
                    g.trial_running = true;
                    true
                }
            }
        }
    }

    /// Report a call's result. Only retryable errors count: a bad request says nothing
    /// about the provider's health.
    pub fn record(&self, result: std::result::Result<(), &Error>) {
        let mut g = self.lock();
        g.trial_running = false;
        match result {
            Ok(()) => {
                g.state = BreakerState::Closed;
                g.failures = 0;
                g.opened_at = None;
            }
            Err(e) if e.is_retryable() => {
                g.failures += 1;
                if g.state == BreakerState::HalfOpen || g.failures >= self.threshold {
                    g.state = BreakerState::Open;
                    g.opened_at = Some(Instant::now());
                }
            }
            Err(_) => {
                if g.state == BreakerState::HalfOpen {
                    // The provider answered: it is up.
                    g.state = BreakerState::Closed;
                    g.failures = 0;
                }
            }
        }
    }
}

/// One model with its breaker.
#[derive(Clone)]
pub struct GuardedModel {
    /// The model id (configuration key).
    pub id: String,
    /// The model.
    pub model: Arc<dyn ChatModel>,
    /// Its breaker, shared by every application using the model.
    pub breaker: Arc<Breaker>,
}

/// Tries models in order: the first whose breaker admits the call and that does not fail
/// with a retryable error answers. Non-retryable errors (bad request, context length) are
/// returned at once: another model would refuse them too, or answer something else.
#[derive(Clone)]
pub struct FallbackModel {
    chain: Vec<GuardedModel>,
}

impl FallbackModel {
    /// A chain of at least one model.
    pub fn new(chain: Vec<GuardedModel>) -> Self {
        Self { chain }
    }

    async fn attempt<'s, T>(
        &'s self,
        mut call: impl FnMut(&'s GuardedModel) -> BoxFuture<'s, Result<T>>,
    ) -> Result<(T, String)> {
        let mut last: Option<Error> = None;
        for m in &self.chain {
            if !m.breaker.try_acquire() {
                metrics::counter!("eino_breaker_rejections_total", "model" => m.id.clone())
                    .increment(1);
                continue;
            }
            match call(m).await {
                Ok(v) => {
                    m.breaker.record(Ok(()));
                    return Ok((v, m.id.clone()));
                }
                Err(e) => {
                    m.breaker.record(Err(&e));
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    tracing::warn!(model = %m.id, error = %e, "model failed; trying the next one");
                    metrics::counter!("eino_model_fallbacks_total", "model" => m.id.clone())
                        .increment(1);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                ErrorKind::Transient,
                "every model of this application is unavailable (circuit open)",
            )
            .with_retry_after(Duration::from_secs(5))
        }))
    }
}

impl ChatModel for FallbackModel {
    fn generate<'a>(
        &'a self,
        messages: &'a [Message],
        options: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move {
            let (mut msg, id) = self
                .attempt(|m| m.model.generate(messages, options))
                .await?;
            msg.extra.insert("model".into(), id.into());
            Ok(msg)
        })
    }

    fn stream<'a>(
        &'a self,
        messages: &'a [Message],
        options: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        // Only the start of a stream can fail over; once chunks flow, the client has them.
        Box::pin(async move { Ok(self.attempt(|m| m.model.stream(messages, options)).await?.0) })
    }

    fn with_tools(&self, tools: Vec<ToolInfo>) -> Result<Arc<dyn ChatModel>> {
        let chain = self
            .chain
            .iter()
            .map(|m| {
                Ok(GuardedModel {
                    id: m.id.clone(),
                    model: m.model.with_tools(tools.clone())?,
                    breaker: m.breaker.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Self { chain }))
    }

    fn model_name(&self) -> Option<&str> {
        self.chain.first().map(|m| m.id.as_str())
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("FallbackModel")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let b = Breaker::new(2, Duration::from_millis(30));
        let down = Error::new(ErrorKind::Transient, "down");
        let bad = Error::invalid_input("bad");
        assert!(b.try_acquire());
        b.record(Err(&bad));
        b.record(Err(&down));
        assert_eq!(b.state(), BreakerState::Closed, "bad requests do not count");
        b.record(Err(&down));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.try_acquire());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire(), "one trial");
        assert!(!b.try_acquire(), "only one");
        b.record(Err(&down));
        assert_eq!(b.state(), BreakerState::Open, "failed trial reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.try_acquire());
        b.record(Ok(()));
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire() && b.try_acquire());
    }
}
