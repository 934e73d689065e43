//! The one error type of the framework, classified so callers know whether a retry can help.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::compose::{Checkpoint, InterruptInfo};

/// A specialised `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, at the level a caller acts on (retry, fix input, give up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A passing fault (network, 5xx, overloaded): retrying can help.
    Transient,
    /// The provider refused because of a rate limit: retry after [`Error::retry_after`].
    RateLimited,
    /// The prompt does not fit the model's context window.
    ContextLength,
    /// The input is malformed or violates a contract (bad template variable, bad tool arguments).
    InvalidInput,
    /// Credentials are missing or were refused.
    Auth,
    /// The run stopped on purpose so a human or another process can resume it.
    Interrupted,
    /// The run was cancelled by its caller.
    Cancelled,
    /// A deadline passed (node or run timeout).
    Timeout,
    /// A graph definition is invalid; reported by `compile()` before anything runs.
    Graph,
    /// A cyclic graph ran more supersteps than allowed.
    ExceededMaxSteps,
    /// Stream chunks or fan-in values could not be concatenated or merged.
    Concat,
    /// Not a failure: marks, inside a merged stream, that one named source ended
    /// (see [`StreamReader::merge_named`](crate::schema::StreamReader::merge_named)).
    SourceEnded,
    /// A bug or broken invariant inside a component or the framework.
    Internal,
}

impl ErrorKind {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::RateLimited | Self::Timeout)
    }

    fn label(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::RateLimited => "rate limited",
            Self::ContextLength => "context length exceeded",
            Self::InvalidInput => "invalid input",
            Self::Auth => "auth",
            Self::Interrupted => "interrupted",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Graph => "graph",
            Self::ExceededMaxSteps => "exceeded max steps",
            Self::Concat => "concat",
            Self::SourceEnded => "source ended",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The framework's error: a [`ErrorKind`], a message, the node path where it happened
/// (outermost graph first), an optional cause and an optional retry hint.
///
/// Displayed like Eino's run errors so logs read the same:
///
/// ```
/// use eino::{Error, ErrorKind};
/// let e = Error::new(ErrorKind::InvalidInput, "my error").in_node("1").in_node("a");
/// assert_eq!(e.node_path(), ["a", "1"]);
/// assert!(e.to_string().starts_with("[NodeRunError] my error"));
/// assert!(e.to_string().ends_with("node path: [a, 1]"));
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    node_path: Vec<String>,
    retry_after: Option<Duration>,
    source: Option<Source>,
    interrupt: Option<Arc<Interrupt>>,
}

/// What an interrupt carries: from a node, its info and saved state; from a graph, why it
/// stopped and its checkpoint.
#[derive(Debug, Default)]
pub(crate) struct Interrupt {
    pub(crate) info: Option<serde_json::Value>,
    pub(crate) state: Option<serde_json::Value>,
    pub(crate) graph: Option<InterruptInfo>,
    pub(crate) checkpoint: Option<Box<Checkpoint>>,
}

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            node_path: Vec::new(),
            retry_after: None,
            source: None,
            interrupt: None,
        }
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error.
    pub fn invalid_input(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for an [`ErrorKind::Graph`] (definition) error.
    pub fn graph(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Graph, message)
    }

    /// Shorthand for an [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Shorthand for an [`ErrorKind::Concat`] error.
    pub fn concat(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Concat, message)
    }

    /// Shorthand for an [`ErrorKind::Cancelled`] error.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "context has been canceled")
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Attach a retry hint (e.g. from a `Retry-After` header).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Stop the run for outside input (human in the loop): a node returns this error. `info`
    /// tells the caller what is needed; on resume the node runs again with the same input and
    /// can read [`Context::resume_data`](crate::compose::Context::resume_data).
    pub fn interrupt(info: serde_json::Value) -> Self {
        Self::interrupt_with_state(info, serde_json::Value::Null)
    }

    /// Like [`Error::interrupt`], also saving `state` that the re-run node reads back with
    /// [`Context::interrupt_state`](crate::compose::Context::interrupt_state).
    pub fn interrupt_with_state(info: serde_json::Value, state: serde_json::Value) -> Self {
        let mut e = Self::new(ErrorKind::Interrupted, "interrupted");
        e.interrupt = Some(Arc::new(Interrupt {
            info: Some(info),
            state: (!state.is_null()).then_some(state),
            ..Interrupt::default()
        }));
        e
    }

    pub(crate) fn graph_interrupt(info: InterruptInfo, checkpoint: Option<Checkpoint>) -> Self {
        let mut e = Self::new(ErrorKind::Interrupted, "graph interrupted");
        e.interrupt = Some(Arc::new(Interrupt {
            graph: Some(info),
            checkpoint: checkpoint.map(Box::new),
            ..Interrupt::default()
        }));
        e
    }

    pub(crate) fn interrupt_parts(&self) -> Option<&Interrupt> {
        self.interrupt.as_deref()
    }

    /// The info a node passed to [`Error::interrupt`].
    pub fn interrupt_payload(&self) -> Option<&serde_json::Value> {
        self.interrupt.as_ref().and_then(|i| i.info.as_ref())
    }

    /// Why a graph run stopped, when it was interrupted.
    pub fn interrupt_info(&self) -> Option<&InterruptInfo> {
        self.interrupt.as_ref().and_then(|i| i.graph.as_ref())
    }

    /// Record that the error happened inside node `key`; call from the innermost level
    /// outwards, each enclosing graph prepends its own node key.
    pub fn in_node(mut self, key: impl Into<String>) -> Self {
        self.node_path.insert(0, key.into());
        self
    }

    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The message without node path or cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Node keys from the outermost graph to the node that failed; empty outside graphs.
    pub fn node_path(&self) -> &[String] {
        &self.node_path
    }

    /// How long to wait before retrying, when the provider said so.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node_path.is_empty() {
            f.write_str(&self.message)?;
            if let Some(src) = &self.source {
                write!(f, ": {src}")?;
            }
            return Ok(());
        }
        write!(f, "[NodeRunError] {}", self.message)?;
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        write!(
            f,
            "\n------------------------\nnode path: [{}]",
            self.node_path.join(", ")
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("node_path", &self.node_path)
            .field("retry_after", &self.retry_after)
            .field("source", &self.source)
            .field("interrupt", &self.interrupt)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::invalid_input("invalid JSON").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        assert!(ErrorKind::Transient.is_retryable());
        assert!(ErrorKind::RateLimited.is_retryable());
        assert!(!ErrorKind::InvalidInput.is_retryable());
        assert!(!ErrorKind::Auth.is_retryable());
    }

    #[test]
    fn display_without_path_is_plain() {
        let e = Error::invalid_input("bad");
        assert_eq!(e.to_string(), "bad");
    }
}
