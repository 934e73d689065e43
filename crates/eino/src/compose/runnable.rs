//! `Runnable`: the four paradigms (invoke, stream, collect, transform), and `Lambda`, a node
//! made of user functions for any subset of them; the rest is derived with Eino's priority
//! table (inventory §3.1), and callbacks wrap only the functions the user supplied.

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::value::{concat_typed, GraphValue};
use super::Context;
use crate::callbacks::{ComponentKind, RunInfo};
use crate::error::Result;
use crate::schema::StreamReader;

/// Something that turns `I` into `O` in any of four ways:
///
/// | method | input | output |
/// |---|---|---|
/// | `invoke` | value | value |
/// | `stream` | value | stream |
/// | `collect` | stream | value |
/// | `transform` | stream | stream |
///
/// Compiled graphs, chains and lambdas implement it; so can your own types.
pub trait Runnable<I, O>: Send + Sync {
    /// Value in, value out.
    fn invoke<'a>(&'a self, input: I, ctx: &'a Context) -> BoxFuture<'a, Result<O>>;
    /// Value in, stream out.
    fn stream<'a>(&'a self, input: I, ctx: &'a Context) -> BoxFuture<'a, Result<StreamReader<O>>>;
    /// Stream in, value out.
    fn collect<'a>(&'a self, input: StreamReader<I>, ctx: &'a Context) -> BoxFuture<'a, Result<O>>;
    /// Stream in, stream out.
    fn transform<'a>(
        &'a self,
        input: StreamReader<I>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<O>>>;
}

impl<I, O, R: Runnable<I, O> + ?Sized> Runnable<I, O> for Arc<R> {
    fn invoke<'a>(&'a self, input: I, ctx: &'a Context) -> BoxFuture<'a, Result<O>> {
        (**self).invoke(input, ctx)
    }
    fn stream<'a>(&'a self, input: I, ctx: &'a Context) -> BoxFuture<'a, Result<StreamReader<O>>> {
        (**self).stream(input, ctx)
    }
    fn collect<'a>(&'a self, input: StreamReader<I>, ctx: &'a Context) -> BoxFuture<'a, Result<O>> {
        (**self).collect(input, ctx)
    }
    fn transform<'a>(
        &'a self,
        input: StreamReader<I>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<O>>> {
        (**self).transform(input, ctx)
    }
}

type InvokeFn<I, O> = Arc<dyn Fn(I, Context) -> BoxFuture<'static, Result<O>> + Send + Sync>;
type StreamFn<I, O> =
    Arc<dyn Fn(I, Context) -> BoxFuture<'static, Result<StreamReader<O>>> + Send + Sync>;
type CollectFn<I, O> =
    Arc<dyn Fn(StreamReader<I>, Context) -> BoxFuture<'static, Result<O>> + Send + Sync>;
type TransformFn<I, O> = Arc<
    dyn Fn(StreamReader<I>, Context) -> BoxFuture<'static, Result<StreamReader<O>>> + Send + Sync,
>;

/// A node made of user functions. Build one with [`lambda`], [`stream_lambda`],
/// [`collect_lambda`], [`transform_lambda`], or [`Lambda::new`] and the `with_*` methods
/// (whose functions also receive the [`Context`], e.g. for graph state).
pub struct Lambda<I, O> {
    invoke: Option<InvokeFn<I, O>>,
    stream: Option<StreamFn<I, O>>,
    collect: Option<CollectFn<I, O>>,
    transform: Option<TransformFn<I, O>>,
    typ: Cow<'static, str>,
    kind: ComponentKind,
    callbacks_enabled: bool,
    _p: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for Lambda<I, O> {
    fn clone(&self) -> Self {
        Self {
            invoke: self.invoke.clone(),
            stream: self.stream.clone(),
            collect: self.collect.clone(),
            transform: self.transform.clone(),
            typ: self.typ.clone(),
            kind: self.kind,
            callbacks_enabled: self.callbacks_enabled,
            _p: PhantomData,
        }
    }
}

impl<I, O> std::fmt::Debug for Lambda<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lambda")
            .field("type", &self.typ)
            .field("invoke", &self.invoke.is_some())
            .field("stream", &self.stream.is_some())
            .field("collect", &self.collect.is_some())
            .field("transform", &self.transform.is_some())
            .finish()
    }
}

/// An invoke-only lambda from an async function.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use eino::compose::{lambda, Context, Runnable};
/// let shout = lambda(|s: String| async move { Ok(s.to_uppercase()) });
/// // Derived paradigms: stream boxes the result into one chunk.
/// let mut out = shout.stream("hi".into(), &Context::new()).await.unwrap();
/// assert_eq!(out.recv().await.unwrap().unwrap(), "HI");
/// # });
/// ```
pub fn lambda<I, O, F, Fut>(f: F) -> Lambda<I, O>
where
    I: GraphValue,
    O: GraphValue,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O>> + Send + 'static,
{
    Lambda::new().with_invoke(move |i, _| f(i))
}

/// A stream-only lambda (value in, stream out), e.g. a token generator.
pub fn stream_lambda<I, O, F, Fut>(f: F) -> Lambda<I, O>
where
    I: GraphValue,
    O: GraphValue,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<StreamReader<O>>> + Send + 'static,
{
    Lambda::new().with_stream(move |i, _| f(i))
}

/// A collect-only lambda (stream in, value out).
pub fn collect_lambda<I, O, F, Fut>(f: F) -> Lambda<I, O>
where
    I: GraphValue,
    O: GraphValue,
    F: Fn(StreamReader<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O>> + Send + 'static,
{
    Lambda::new().with_collect(move |i, _| f(i))
}

/// A transform-only lambda (stream in, stream out).
pub fn transform_lambda<I, O, F, Fut>(f: F) -> Lambda<I, O>
where
    I: GraphValue,
    O: GraphValue,
    F: Fn(StreamReader<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<StreamReader<O>>> + Send + 'static,
{
    Lambda::new().with_transform(move |i, _| f(i))
}

impl<I: GraphValue, O: GraphValue> Default for Lambda<I, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: GraphValue, O: GraphValue> Lambda<I, O> {
    /// A lambda with no functions yet; add at least one with the `with_*` methods.
    pub fn new() -> Self {
        Self {
            invoke: None,
            stream: None,
            collect: None,
            transform: None,
            typ: Cow::Borrowed("Lambda"),
            kind: ComponentKind::Lambda,
            callbacks_enabled: false,
            _p: PhantomData,
        }
    }

    /// Supply invoke.
    pub fn with_invoke<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(I, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O>> + Send + 'static,
    {
        self.invoke = Some(Arc::new(move |i, c| Box::pin(f(i, c))));
        self
    }

    /// Supply stream.
    pub fn with_stream<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(I, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StreamReader<O>>> + Send + 'static,
    {
        self.stream = Some(Arc::new(move |i, c| Box::pin(f(i, c))));
        self
    }

    /// Supply collect.
    pub fn with_collect<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(StreamReader<I>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O>> + Send + 'static,
    {
        self.collect = Some(Arc::new(move |i, c| Box::pin(f(i, c))));
        self
    }

    /// Supply transform.
    pub fn with_transform<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(StreamReader<I>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StreamReader<O>>> + Send + 'static,
    {
        self.transform = Some(Arc::new(move |i, c| Box::pin(f(i, c))));
        self
    }

    /// The implementation name callbacks report (default `Lambda`).
    pub fn with_type_name(mut self, typ: impl Into<Cow<'static, str>>) -> Self {
        self.typ = typ.into();
        self
    }

    /// Declare that the functions fire their own callbacks (the framework will not wrap them).
    pub fn with_callbacks_enabled(mut self, enabled: bool) -> Self {
        self.callbacks_enabled = enabled;
        self
    }

    pub(crate) fn with_kind(mut self, kind: ComponentKind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn kind(&self) -> ComponentKind {
        self.kind
    }

    pub(crate) fn type_name(&self) -> &Cow<'static, str> {
        &self.typ
    }

    /// Whether the output may be a stream of several chunks.
    pub(crate) fn streams_output(&self) -> bool {
        self.stream.is_some() || self.transform.is_some()
    }

    /// Whether no paradigm was supplied.
    pub(crate) fn is_empty(&self) -> bool {
        self.invoke.is_none()
            && self.stream.is_none()
            && self.collect.is_none()
            && self.transform.is_none()
    }

    fn info(&self, ctx: &Context) -> RunInfo {
        ctx.run_info()
            .cloned()
            .unwrap_or_else(|| RunInfo::new("", self.typ.clone(), self.kind))
    }

    fn wrapped(&self, ctx: &Context) -> bool {
        !self.callbacks_enabled && ctx.callbacks().is_some()
    }

    // Each `call_*` runs one user function, wrapped in callbacks when handlers are installed.

    async fn call_invoke(&self, f: &InvokeFn<I, O>, input: I, ctx: &Context) -> Result<O> {
        let Some(cbs) = ctx.callbacks().filter(|_| self.wrapped(ctx)) else {
            return f(input, ctx.clone()).await;
        };
        let info = self.info(ctx);
        let call = cbs.start(&info, &input);
        let r = f(input, ctx.nested_in(&call)).await;
        match &r {
            Ok(o) => call.end(o),
            Err(e) => call.error(e),
        }
        r
    }

    async fn call_stream(
        &self,
        f: &StreamFn<I, O>,
        input: I,
        ctx: &Context,
    ) -> Result<StreamReader<O>> {
        let Some(cbs) = ctx.callbacks().filter(|_| self.wrapped(ctx)) else {
            return f(input, ctx.clone()).await;
        };
        let info = self.info(ctx);
        let call = cbs.start(&info, &input);
        match f(input, ctx.nested_in(&call)).await {
            Ok(s) => Ok(call.end_stream(s)),
            Err(e) => {
                call.error(&e);
                Err(e)
            }
        }
    }

    async fn call_collect(
        &self,
        f: &CollectFn<I, O>,
        input: StreamReader<I>,
        ctx: &Context,
    ) -> Result<O> {
        let Some(cbs) = ctx.callbacks().filter(|_| self.wrapped(ctx)) else {
            return f(input, ctx.clone()).await;
        };
        let info = self.info(ctx);
        let (input, call) = cbs.start_stream(&info, input);
        let r = f(input, ctx.nested_in(&call)).await;
        match &r {
            Ok(o) => call.end(o),
            Err(e) => call.error(e),
        }
        r
    }

    async fn call_transform(
        &self,
        f: &TransformFn<I, O>,
        input: StreamReader<I>,
        ctx: &Context,
    ) -> Result<StreamReader<O>> {
        let Some(cbs) = ctx.callbacks().filter(|_| self.wrapped(ctx)) else {
            return f(input, ctx.clone()).await;
        };
        let info = self.info(ctx);
        let (input, call) = cbs.start_stream(&info, input);
        match f(input, ctx.nested_in(&call)).await {
            Ok(s) => Ok(call.end_stream(s)),
            Err(e) => {
                call.error(&e);
                Err(e)
            }
        }
    }
}

fn no_paradigm() -> crate::Error {
    crate::Error::graph("lambda has none of invoke, stream, collect or transform")
}

impl<I: GraphValue, O: GraphValue> Runnable<I, O> for Lambda<I, O> {
    fn invoke<'a>(&'a self, input: I, ctx: &'a Context) -> BoxFuture<'a, Result<O>> {
        if let (Some(f), false) = (&self.invoke, self.wrapped(ctx)) {
            // Fast path: the user's own future, no extra box.
            return f(input, ctx.clone());
        }
        Box::pin(async move {
            if let Some(f) = &self.invoke {
                self.call_invoke(f, input, ctx).await
            } else if let Some(f) = &self.stream {
                concat_typed(self.call_stream(f, input, ctx).await?).await
            } else if let Some(f) = &self.collect {
                self.call_collect(f, StreamReader::once(input), ctx).await
            } else if let Some(f) = &self.transform {
                concat_typed(
                    self.call_transform(f, StreamReader::once(input), ctx)
                        .await?,
                )
                .await
            } else {
                Err(no_paradigm())
            }
        })
    }

    fn stream<'a>(&'a self, input: I, ctx: &'a Context) -> BoxFuture<'a, Result<StreamReader<O>>> {
        Box::pin(async move {
            if let Some(f) = &self.stream {
                self.call_stream(f, input, ctx).await
            } else if let Some(f) = &self.transform {
                self.call_transform(f, StreamReader::once(input), ctx).await
            } else if let Some(f) = &self.invoke {
                Ok(StreamReader::once(self.call_invoke(f, input, ctx).await?))
            } else if let Some(f) = &self.collect {
                Ok(StreamReader::once(
                    self.call_collect(f, StreamReader::once(input), ctx).await?,
                ))
            } else {
                Err(no_paradigm())
            }
        })
    }

    fn collect<'a>(&'a self, input: StreamReader<I>, ctx: &'a Context) -> BoxFuture<'a, Result<O>> {
        Box::pin(async move {
            if let Some(f) = &self.collect {
                self.call_collect(f, input, ctx).await
            } else if let Some(f) = &self.transform {
                concat_typed(self.call_transform(f, input, ctx).await?).await
            } else if let Some(f) = &self.invoke {
                self.call_invoke(f, concat_typed(input).await?, ctx).await
            } else if let Some(f) = &self.stream {
                concat_typed(self.call_stream(f, concat_typed(input).await?, ctx).await?).await
            } else {
                Err(no_paradigm())
            }
        })
    }

    fn transform<'a>(
        &'a self,
        input: StreamReader<I>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<O>>> {
        if let (Some(f), false) = (&self.transform, self.wrapped(ctx)) {
            return f(input, ctx.clone());
        }
        Box::pin(async move {
            if let Some(f) = &self.transform {
                self.call_transform(f, input, ctx).await
            } else if let Some(f) = &self.stream {
                self.call_stream(f, concat_typed(input).await?, ctx).await
            } else if let Some(f) = &self.collect {
                Ok(StreamReader::once(self.call_collect(f, input, ctx).await?))
            } else if let Some(f) = &self.invoke {
                Ok(StreamReader::once(
                    self.call_invoke(f, concat_typed(input).await?, ctx).await?,
                ))
            } else {
                Err(no_paradigm())
            }
        })
    }
}
