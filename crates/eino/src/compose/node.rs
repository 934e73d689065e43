//! Turning components, lambdas and subgraphs into graph nodes.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::runnable::{Lambda, Runnable};
use super::value::{concat_typed, GraphValue};
use super::Context;
use crate::callbacks::{ComponentKind, RunInfo};
use crate::component::{
    ChatCallbackInput, ChatModel, ChatTemplate, EmbedOptions, Embedder, IndexOptions, Indexer,
    LoadOptions, Loader, RetrieveOptions, Retriever, Source, TransformOptions, Transformer,
};
use crate::error::{Error, Result};
use crate::schema::{Document, Map, Message, StreamReader};

/// A node ready to add to a graph: its runnable and what callbacks and `compile()` need to
/// know about it.
pub struct NodeDef<I, O> {
    pub(crate) runnable: Arc<dyn Runnable<I, O>>,
    pub(crate) kind: ComponentKind,
    pub(crate) typ: Cow<'static, str>,
    pub(crate) streams_output: bool,
    pub(crate) is_subgraph: bool,
    pub(crate) error: Option<Error>,
    /// For subgraphs: why their values cannot be checkpointed, if so.
    pub(crate) sub_serde_problem: Option<String>,
}

impl<I, O> std::fmt::Debug for NodeDef<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDef")
            .field("kind", &self.kind)
            .field("type", &self.typ)
            .finish()
    }
}

impl<I: GraphValue, O: GraphValue> NodeDef<I, O> {
    /// A node from any runnable.
    pub fn from_runnable(
        runnable: Arc<dyn Runnable<I, O>>,
        kind: ComponentKind,
        typ: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            runnable,
            kind,
            typ: typ.into(),
            streams_output: true,
            is_subgraph: false,
            error: None,
            sub_serde_problem: None,
        }
    }

    /// Wrap the output as `{key: output}` (a [`Map`]), e.g. for fan-in into one map.
    pub fn output_key(self, key: impl Into<String>) -> NodeDef<I, Map>
    where
        O: Serialize,
    {
        NodeDef {
            runnable: Arc::new(OutputKey {
                inner: self.runnable,
                key: key.into(),
            }),
            kind: self.kind,
            typ: self.typ,
            streams_output: self.streams_output,
            is_subgraph: self.is_subgraph,
            error: self.error,
            sub_serde_problem: self.sub_serde_problem,
        }
    }

    /// Take the input from field `key` of a [`Map`].
    pub fn input_key(self, key: impl Into<String>) -> NodeDef<Map, O>
    where
        I: DeserializeOwned,
    {
        NodeDef {
            runnable: Arc::new(InputKey {
                inner: self.runnable,
                key: key.into(),
            }),
            kind: self.kind,
            typ: self.typ,
            streams_output: self.streams_output,
            is_subgraph: self.is_subgraph,
            error: self.error,
            sub_serde_problem: self.sub_serde_problem,
        }
    }
}

/// Anything that can become a graph node with input `I` and output `O`.
pub trait IntoNode<I, O> {
    /// Convert.
    fn into_node(self) -> NodeDef<I, O>;
}

impl<I, O> IntoNode<I, O> for NodeDef<I, O> {
    fn into_node(self) -> NodeDef<I, O> {
        self
    }
}

impl<I: GraphValue, O: GraphValue> IntoNode<I, O> for Lambda<I, O> {
    fn into_node(self) -> NodeDef<I, O> {
        let error = self
            .is_empty()
            .then(|| Error::graph("lambda has none of invoke, stream, collect or transform"));
        NodeDef {
            kind: self.kind(),
            typ: self.type_name().clone(),
            streams_output: self.streams_output(),
            is_subgraph: false,
            error,
            sub_serde_problem: None,
            runnable: Arc::new(self),
        }
    }
}

/// Convenience conversions: `lambda(...).output_key("k")` without `into_node()`.
pub trait IntoNodeExt<I, O>: IntoNode<I, O> + Sized {
    /// See [`NodeDef::output_key`].
    fn output_key(self, key: impl Into<String>) -> NodeDef<I, Map>
    where
        I: GraphValue,
        O: GraphValue + Serialize,
    {
        self.into_node().output_key(key)
    }

    /// See [`NodeDef::input_key`].
    fn input_key(self, key: impl Into<String>) -> NodeDef<Map, O>
    where
        I: GraphValue + DeserializeOwned,
        O: GraphValue,
    {
        self.into_node().input_key(key)
    }
}

impl<I, O, T: IntoNode<I, O>> IntoNodeExt<I, O> for T {}

/// A node that passes its input on unchanged.
#[derive(Debug)]
pub struct Passthrough<T>(PhantomData<fn(T) -> T>);

impl<T> Default for Passthrough<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T> Passthrough<T> {
    /// A passthrough node for values of type `T`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T: GraphValue> IntoNode<T, T> for Passthrough<T> {
    fn into_node(self) -> NodeDef<T, T> {
        let l = Lambda::new()
            .with_invoke(|x: T, _| async move { Ok(x) })
            .with_transform(|s: StreamReader<T>, _| async move { Ok(s) })
            .with_kind(ComponentKind::Passthrough)
            .with_type_name("Passthrough")
            // Passthrough forwards whatever it gets; it adds no chunks of its own.
            .with_callbacks_enabled(true);
        NodeDef {
            streams_output: false,
            ..l.into_node()
        }
    }
}

fn last_option<T: Clone + Default + Send + Sync + 'static>(ctx: &Context) -> T {
    ctx.options::<T>().last().cloned().unwrap_or_default()
}

impl IntoNode<Map, Vec<Message>> for Arc<dyn ChatTemplate> {
    fn into_node(self) -> NodeDef<Map, Vec<Message>> {
        let typ = self.type_name();
        lambda_node(
            ComponentKind::ChatTemplate,
            typ,
            move |vars: Map, _ctx: Context| {
                let t = self.clone();
                async move { t.format(&vars) }
            },
        )
    }
}

impl IntoNode<String, Vec<Document>> for Arc<dyn Retriever> {
    fn into_node(self) -> NodeDef<String, Vec<Document>> {
        let typ = self.type_name();
        lambda_node(ComponentKind::Retriever, typ, move |q: String, ctx| {
            let r = self.clone();
            async move { r.retrieve(&q, &last_option::<RetrieveOptions>(&ctx)).await }
        })
    }
}

impl IntoNode<Vec<String>, Vec<Vec<f32>>> for Arc<dyn Embedder> {
    fn into_node(self) -> NodeDef<Vec<String>, Vec<Vec<f32>>> {
        let typ = self.type_name();
        lambda_node(
            ComponentKind::Embedder,
            typ,
            move |texts: Vec<String>, ctx| {
                let e = self.clone();
                async move { e.embed(&texts, &last_option::<EmbedOptions>(&ctx)).await }
            },
        )
    }
}

impl IntoNode<Vec<Document>, Vec<String>> for Arc<dyn Indexer> {
    fn into_node(self) -> NodeDef<Vec<Document>, Vec<String>> {
        let typ = self.type_name();
        lambda_node(
            ComponentKind::Indexer,
            typ,
            move |docs: Vec<Document>, ctx| {
                let i = self.clone();
                async move { i.store(docs, &last_option::<IndexOptions>(&ctx)).await }
            },
        )
    }
}

impl IntoNode<Source, Vec<Document>> for Arc<dyn Loader> {
    fn into_node(self) -> NodeDef<Source, Vec<Document>> {
        let typ = self.type_name();
        lambda_node(ComponentKind::Loader, typ, move |src: Source, ctx| {
            let l = self.clone();
            async move { l.load(&src, &last_option::<LoadOptions>(&ctx)).await }
        })
    }
}

impl IntoNode<Vec<Document>, Vec<Document>> for Arc<dyn Transformer> {
    fn into_node(self) -> NodeDef<Vec<Document>, Vec<Document>> {
        let typ = self.type_name();
        lambda_node(
            ComponentKind::Transformer,
            typ,
            move |docs: Vec<Document>, ctx| {
                let t = self.clone();
                async move {
                    t.transform(docs, &last_option::<TransformOptions>(&ctx))
                        .await
                }
            },
        )
    }
}

fn lambda_node<I, O, F, Fut>(kind: ComponentKind, typ: Cow<'static, str>, f: F) -> NodeDef<I, O>
where
    I: GraphValue,
    O: GraphValue,
    F: Fn(I, Context) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<O>> + Send + 'static,
{
    Lambda::new()
        .with_invoke(f)
        .with_kind(kind)
        .with_type_name(typ)
        .into_node()
}

/// A chat model as a node: invoke = generate, stream = stream; callbacks see a
/// [`ChatCallbackInput`] (messages and effective options).
struct ChatModelNode {
    model: Arc<dyn ChatModel>,
}

impl ChatModelNode {
    fn options(&self, ctx: &Context) -> crate::component::ChatOptions {
        let mut o = ctx.chat_options();
        if o.model.is_none() {
            o.model = self.model.model_name().map(str::to_string);
        }
        o
    }

    async fn run(&self, messages: Vec<Message>, ctx: &Context, stream: bool) -> Result<Out> {
        let options = self.options(ctx);
        let wrapped = !self.model.callbacks_enabled();
        let cbs = ctx.callbacks().filter(|_| wrapped);
        let Some(cbs) = cbs else {
            return if stream {
                Ok(Out::Stream(self.model.stream(&messages, &options).await?))
            } else {
                Ok(Out::Value(Box::new(
                    self.model.generate(&messages, &options).await?,
                )))
            };
        };
        let info = ctx
            .run_info()
            .cloned()
            .unwrap_or_else(|| RunInfo::new("", self.model.type_name(), ComponentKind::ChatModel));
        let input = ChatCallbackInput { messages, options };
        let call = cbs.start(&info, &input);
        let r = if stream {
            self.model
                .stream(&input.messages, &input.options)
                .await
                .map(|s| Out::Stream(call.end_stream(s)))
        } else {
            self.model
                .generate(&input.messages, &input.options)
                .await
                .inspect(|m| call.end(m))
                .map(|m| Out::Value(Box::new(m)))
        };
        if let Err(e) = &r {
            call.error(e);
        }
        r
    }
}

enum Out {
    Value(Box<Message>),
    Stream(StreamReader<Message>),
}

impl Out {
    async fn value(self) -> Result<Message> {
        match self {
            Out::Value(m) => Ok(*m),
            Out::Stream(s) => concat_typed(s).await,
        }
    }
    fn stream(self) -> StreamReader<Message> {
        match self {
            Out::Value(m) => StreamReader::once(*m),
            Out::Stream(s) => s,
        }
    }
}

impl Runnable<Vec<Message>, Message> for ChatModelNode {
    fn invoke<'a>(
        &'a self,
        input: Vec<Message>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move { self.run(input, ctx, false).await?.value().await })
    }
    fn stream<'a>(
        &'a self,
        input: Vec<Message>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(self.run(input, ctx, true).await?.stream()) })
    }
    fn collect<'a>(
        &'a self,
        input: StreamReader<Vec<Message>>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move {
            let msgs = concat_typed(input).await?;
            self.run(msgs, ctx, false).await?.value().await
        })
    }
    fn transform<'a>(
        &'a self,
        input: StreamReader<Vec<Message>>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        Box::pin(async move {
            let msgs = concat_typed(input).await?;
            Ok(self.run(msgs, ctx, true).await?.stream())
        })
    }
}

impl IntoNode<Vec<Message>, Message> for Arc<dyn ChatModel> {
    fn into_node(self) -> NodeDef<Vec<Message>, Message> {
        let typ = self.type_name();
        NodeDef {
            runnable: Arc::new(ChatModelNode { model: self }),
            kind: ComponentKind::ChatModel,
            typ,
            streams_output: true,
            is_subgraph: false,
            error: None,
            sub_serde_problem: None,
        }
    }
}

struct OutputKey<I, O> {
    inner: Arc<dyn Runnable<I, O>>,
    key: String,
}

impl<I, O: Serialize> OutputKey<I, O> {
    fn wrap(&self, o: O) -> Result<Map> {
        let mut m = Map::new();
        m.insert(self.key.clone(), serde_json::to_value(o)?);
        Ok(m)
    }
    fn wrap_stream(&self, s: StreamReader<O>) -> StreamReader<Map>
    where
        O: Send + 'static,
    {
        let key = self.key.clone();
        s.map(move |o| {
            let mut m = Map::new();
            m.insert(key.clone(), serde_json::to_value(o)?);
            Ok(m)
        })
    }
}

impl<I: Send + 'static, O: Serialize + Send + 'static> Runnable<I, Map> for OutputKey<I, O> {
    fn invoke<'a>(&'a self, input: I, ctx: &'a Context) -> BoxFuture<'a, Result<Map>> {
        Box::pin(async move { self.wrap(self.inner.invoke(input, ctx).await?) })
    }
    fn stream<'a>(
        &'a self,
        input: I,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<Map>>> {
        Box::pin(async move { Ok(self.wrap_stream(self.inner.stream(input, ctx).await?)) })
    }
    fn collect<'a>(
        &'a self,
        input: StreamReader<I>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Map>> {
        Box::pin(async move { self.wrap(self.inner.collect(input, ctx).await?) })
    }
    fn transform<'a>(
        &'a self,
        input: StreamReader<I>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<Map>>> {
        Box::pin(async move { Ok(self.wrap_stream(self.inner.transform(input, ctx).await?)) })
    }
}

struct InputKey<I, O> {
    inner: Arc<dyn Runnable<I, O>>,
    key: String,
}

impl<I: DeserializeOwned + Send + 'static, O> InputKey<I, O> {
    fn take(&self, mut m: Map) -> Result<I> {
        let v = m
            .remove(&self.key)
            .ok_or_else(|| Error::invalid_input(format!("input key '{}' not found", self.key)))?;
        serde_json::from_value(v).map_err(|e| {
            Error::invalid_input(format!("input key '{}' has the wrong type: {e}", self.key))
        })
    }
    fn take_stream(&self, s: StreamReader<Map>) -> StreamReader<I> {
        let key = self.key.clone();
        s.filter_map(move |mut m| {
            m.remove(&key)
                .map(|v| serde_json::from_value(v).map_err(Error::from))
        })
    }
}

impl<I: DeserializeOwned + Send + 'static, O: Send + 'static> Runnable<Map, O> for InputKey<I, O> {
    fn invoke<'a>(&'a self, input: Map, ctx: &'a Context) -> BoxFuture<'a, Result<O>> {
        Box::pin(async move { self.inner.invoke(self.take(input)?, ctx).await })
    }
    fn stream<'a>(
        &'a self,
        input: Map,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<O>>> {
        Box::pin(async move { self.inner.stream(self.take(input)?, ctx).await })
    }
    fn collect<'a>(
        &'a self,
        input: StreamReader<Map>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<O>> {
        Box::pin(async move { self.inner.collect(self.take_stream(input), ctx).await })
    }
    fn transform<'a>(
        &'a self,
        input: StreamReader<Map>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<O>>> {
        Box::pin(async move { self.inner.transform(self.take_stream(input), ctx).await })
    }
}
