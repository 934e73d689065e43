//! Which application or raw model answers a request, for both APIs: an application by
//! id (its compiled graph) or a model by id (in a one-node chain, so callbacks and traces
//! see the call), with the request's tools bound to raw models.

use std::collections::BTreeMap;
use std::sync::Arc;

use eino::component::ChatModel;
use eino::compose::{Chain, CheckpointRun, CompileOptions, Compiled, Context, Runnable};
use eino::schema::{Message, StreamReader, ToolInfo};

use crate::app::{AppInput, Application, SourcesSink};
use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;
use crate::resilience::FallbackModel;

/// What will answer a request: an application or a raw model.
pub enum Target {
    /// An application (its graph).
    App(Arc<crate::app::Application>),
    /// A raw model (tools bound) in a one-node chain, so callbacks and traces see it.
    Model(Compiled<Vec<Message>, Message>),
}

/// The applications and models requests can name.
pub struct Targets<'a> {
    /// Applications by id.
    pub apps: &'a BTreeMap<String, Arc<Application>>,
    /// Models and embedders.
    pub registry: &'a Registry,
    /// Raw models compiled once (no tools bound).
    pub raw_models: &'a BTreeMap<String, Compiled<Vec<Message>, Message>>,
}

/// What answers `model` (an application or a raw model id) with `tools` bound.
pub fn resolve(targets: &Targets<'_>, model: &str, tools: Vec<ToolInfo>) -> ApiResult<Target> {
    if let Some(app) = targets.apps.get(model) {
        if !tools.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{model} is an application; tools can only be passed to raw models"
            )));
        }
        return Ok(Target::App(app.clone()));
    }
    let Some(m) = targets.registry.models.get(model) else {
        return Err(ApiError::not_found(format!(
            "model {model:?} does not exist; GET /v1/models lists the ids"
        ))
        .with_code("model_not_found"));
    };
    if tools.is_empty() {
        if let Some(c) = targets.raw_models.get(model) {
            return Ok(Target::Model(c.clone()));
        }
    }
    let bound = FallbackModel::new(vec![m.clone()]).with_tools(tools)?;
    Ok(Target::Model(raw_chain(model, bound)?))
}

/// A model as a one-node chain named after it, so callbacks and traces see the call.
pub fn raw_chain(
    id: &str,
    model: Arc<dyn ChatModel>,
) -> eino::Result<Compiled<Vec<Message>, Message>> {
    Chain::<Vec<Message>, Vec<Message>>::new()
        .then_keyed("model", model)
        .compile_with(CompileOptions::default().with_name(id.to_string()))
}

/// An application call's input, and the context whose sink collects its sources (and,
/// for an interruptible application, the checkpoint of run `run_id`).
fn app_call(
    app: &crate::app::Application,
    tenant: &str,
    messages: Vec<Message>,
    ctx: Context,
    run_id: &str,
) -> (AppInput, Context, SourcesSink) {
    let input = AppInput {
        tenant: tenant.to_string(),
        messages,
    };
    let checkpoint = CheckpointRun::new(run_id).force_new_run();
    let (ctx, sink) = app.run_context(ctx, tenant, checkpoint);
    (input, ctx, sink)
}

impl Target {
    /// Answer in one piece (as run `run_id`).
    pub async fn invoke(
        &self,
        tenant: &str,
        messages: Vec<Message>,
        ctx: Context,
        run_id: &str,
    ) -> eino::Result<(Message, Vec<eino::schema::Document>)> {
        match self {
            Target::App(app) => {
                let (input, ctx, sink) = app_call(app, tenant, messages, ctx, run_id);
                Ok((app.invoke(input, &ctx).await?, sink.take()))
            }
            Target::Model(c) => Ok((c.invoke(messages, &ctx).await?, Vec::new())),
        }
    }

    /// Answer as a stream (as run `run_id`); the sources are known before the first chunk.
    pub async fn stream(
        &self,
        tenant: &str,
        messages: Vec<Message>,
        ctx: Context,
        run_id: &str,
    ) -> eino::Result<(StreamReader<Message>, Vec<eino::schema::Document>)> {
        match self {
            Target::App(app) => {
                let (input, ctx, sink) = app_call(app, tenant, messages, ctx, run_id);
                Ok((app.stream(input, &ctx).await?, sink.take()))
            }
            Target::Model(c) => Ok((c.stream(messages, &ctx).await?, Vec::new())),
        }
    }
}
