//! [`AgentMiddleware`]: the one extension point of a [`ChatModelAgent`](super::ChatModelAgent)'s
//! loop. A middleware can add instruction text and tools, rewrite the conversation before
//! each model call (the rewrite is kept, like Eino's `BeforeModelRewriteState`), choose
//! which tools the model is offered each turn, and wrap the model. Ready-made ones are in
//! [`middlewares`](super::middlewares).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::run::AgentRun;
use crate::component::{ChatModel, Tool};
use crate::error::Result;
use crate::schema::{Message, ToolInfo};

/// A change to how a [`ChatModelAgent`](super::ChatModelAgent) works; every method has a
/// default that changes nothing. Middlewares apply in the order they were added (the first
/// rewrites first and wraps the model outermost).
pub trait AgentMiddleware: Send + Sync {
    /// Text added to the agent's instruction.
    fn instruction(&self) -> Option<String> {
        None
    }

    /// Tools the middleware brings.
    fn tools(&self) -> Vec<Arc<dyn Tool>> {
        Vec::new()
    }

    /// Rewrite the conversation before a model call; the result replaces the agent's
    /// history for the rest of the run.
    fn before_model<'a>(
        &'a self,
        messages: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        let _ = run;
        Box::pin(async move { Ok(messages) })
    }

    /// The tool definitions the model is offered this turn.
    fn offered_tools(&self, tools: Vec<ToolInfo>, run: &AgentRun) -> Vec<ToolInfo> {
        let _ = run;
        tools
    }

    /// Wrap the model (retries, failover, logging …).
    fn wrap_model(&self, model: Arc<dyn ChatModel>) -> Arc<dyn ChatModel> {
        model
    }
}
