//! Retriever and indexer flows: multi-query, router (with reciprocal-rank fusion) and
//! parent-document retrieval, and the parent indexer.
//!
//! The retrieval flows run with the caller's [`Context`] ([`MultiQueryRetriever::retrieve_in`]
//! and the others, or as graph nodes): their steps fire callbacks (`QueryRewriteLambda`,
//! `RouterLambda`, `FusionFuncLambda`, `GetParentsLambda`, and each inner retriever under
//! its own type name, like Go Eino's flows) and the call's [`RetrieveOptions`] reach the
//! inner retrievers. Called as plain [`Retriever`]s they run with an empty context.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::{join_all, BoxFuture};

use crate::callbacks::{ActiveCall, ComponentKind, RunInfo};
use crate::component::{
    ChatModel, ChatOptions, IndexOptions, Indexer, RetrieveOptions, Retriever, TransformOptions,
    Transformer,
};
use crate::compose::{CallOption, Context, IntoNode, Lambda, NodeDef};
use crate::error::{Error, Result};
use crate::schema::{Document, Message};

/// Start the callbacks of one step of a flow (none without handlers).
fn start_step(
    ctx: &Context,
    name: &'static str,
    input: &(dyn Any + Send + Sync),
) -> Option<ActiveCall> {
    let cbs = ctx.callbacks()?;
    Some(cbs.start(&RunInfo::new(name, "Lambda", ComponentKind::Lambda), input))
}

/// End a step's callbacks with its result.
fn end_step<T: Any + Send + Sync>(call: Option<ActiveCall>, r: Result<T>) -> Result<T> {
    if let Some(call) = call {
        match &r {
            Ok(v) => call.end(v),
            Err(e) => call.error(e),
        }
    }
    r
}

/// The call's retrieve options.
fn retrieve_options(ctx: &Context) -> RetrieveOptions {
    ctx.options::<RetrieveOptions>()
        .last()
        .cloned()
        .unwrap_or_default()
}

/// Call an inner retriever with the call's options and its own callbacks.
async fn inner_retrieve(
    r: &dyn Retriever,
    query: &str,
    options: &RetrieveOptions,
    ctx: &Context,
) -> Result<Vec<Document>> {
    let call = ctx.callbacks().map(|cbs| {
        let typ = r.type_name();
        cbs.start(
            &RunInfo::new(typ.clone(), typ, ComponentKind::Retriever),
            &query.to_string(),
        )
    });
    end_step(call, r.retrieve(query, options).await)
}

/// A context that carries `options` (a flow called as a plain retriever).
fn context_of(options: &RetrieveOptions) -> Context {
    Context::new().with_option(CallOption::retriever(options.clone()))
}

/// A flow (a type with `retrieve_in`) as a graph node of kind Retriever that passes the
/// node's context on.
macro_rules! flow_as_node {
    ($flow:ty, $typ:literal) => {
        impl IntoNode<String, Vec<Document>> for $flow {
            fn into_node(self) -> NodeDef<String, Vec<Document>> {
                let flow = Arc::new(self);
                Lambda::new()
                    .with_invoke(move |q: String, ctx: Context| {
                        let f = flow.clone();
                        async move { f.retrieve_in(&q, &ctx).await }
                    })
                    .with_kind(ComponentKind::Retriever)
                    .with_type_name(Cow::Borrowed($typ))
                    .into_node()
            }
        }
    };
}

type Rewrite = Arc<dyn Fn(String) -> BoxFuture<'static, Result<Vec<String>>> + Send + Sync>;
/// Fuses the result lists of several queries or retrievers into one list (Eino's
/// `FusionFunc`); `eino_rag::Fusion` (RRF or weighted) converts into one.
pub type FusionFn = Arc<dyn Fn(Vec<Vec<Document>>) -> Result<Vec<Document>> + Send + Sync>;

/// Keep the first occurrence of each document id, in list order (the multi-query default).
pub fn dedupe_by_id(lists: Vec<Vec<Document>>) -> Result<Vec<Document>> {
    let mut seen = HashSet::new();
    Ok(lists
        .into_iter()
        .flatten()
        .filter(|d| seen.insert(d.id.clone()))
        .collect())
}

/// Reciprocal-rank fusion: each document scores Σ 1 / (rank + k) over the lists it is in
/// (rank from 0), highest first; ties keep first-seen order. The score is stored in
/// `Document::score`. Eino uses k = 60 ([`rrf`]).
pub fn reciprocal_rank_fusion(lists: Vec<Vec<Document>>, k: f64) -> Vec<Document> {
    let mut fused: Vec<(Document, f64)> = Vec::new();
    for list in lists {
        for (rank, doc) in list.into_iter().enumerate() {
            let add = 1.0 / (rank as f64 + k);
            match fused.iter_mut().find(|(d, _)| d.id == doc.id) {
                Some((_, score)) => *score += add,
                None => fused.push((doc, add)),
            }
        }
    }
    // Stable sort: equal scores keep first-seen order.
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused
        .into_iter()
        .map(|(mut d, s)| {
            d.score = Some(s);
            d
        })
        .collect()
}

/// [`reciprocal_rank_fusion`] with k = 60, as a [`FusionFn`].
pub fn rrf(lists: Vec<Vec<Document>>) -> Result<Vec<Document>> {
    Ok(reciprocal_rank_fusion(lists, 60.0))
}

const REWRITE_PROMPT: &str = "You are an helpful assistant. Your task is to generate {n} \
different versions of the given user question to retrieve relevant documents from a vector \
database. By generating multiple perspectives on the user question, you help the user \
overcome some of the limitations of distance-based similarity search. Provide these \
alternative questions separated by newlines, and nothing else.\nOriginal question: {query}";

/// Rewrites a query into up to N variants, retrieves them concurrently and fuses the lists.
#[derive(Clone)]
pub struct MultiQueryRetriever {
    retriever: Arc<dyn Retriever>,
    rewrite: Rewrite,
    max_queries: usize,
    fusion: FusionFn,
}

impl std::fmt::Debug for MultiQueryRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiQueryRetriever")
            .field("max_queries", &self.max_queries)
            .finish()
    }
}

impl MultiQueryRetriever {
    /// Rewrite with a chat model (one variant per line of its answer); at most 5 queries.
    pub fn with_model(retriever: Arc<dyn Retriever>, model: Arc<dyn ChatModel>) -> Self {
        let max = 5;
        let rewrite: Rewrite = Arc::new(move |q: String| {
            let model = model.clone();
            Box::pin(async move {
                let prompt = REWRITE_PROMPT
                    .replace("{n}", &max.to_string())
                    .replace("{query}", &q);
                let answer = model
                    .generate(&[Message::user(prompt)], &ChatOptions::default())
                    .await?;
                Ok(answer
                    .content
                    .lines()
                    .map(|l| {
                        l.trim()
                            .trim_start_matches(['-', '*', ' '])
                            .trim()
                            .to_string()
                    })
                    .filter(|l| !l.is_empty())
                    .collect())
            })
        });
        Self {
            retriever,
            rewrite,
            max_queries: max,
            fusion: Arc::new(dedupe_by_id),
        }
    }

    /// Rewrite with your own function.
    pub fn with_rewriter<F, Fut>(retriever: Arc<dyn Retriever>, f: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Vec<String>>> + Send + 'static,
    {
        Self {
            retriever,
            rewrite: Arc::new(move |q| Box::pin(f(q))),
            max_queries: 5,
            fusion: Arc::new(dedupe_by_id),
        }
    }

    /// Use at most `n` queries (n ≥ 1).
    pub fn max_queries(mut self, n: usize) -> Self {
        self.max_queries = n.max(1);
        self
    }

    /// Fuse with `f` instead of dedupe-by-id.
    pub fn fusion(
        mut self,
        f: impl Fn(Vec<Vec<Document>>) -> Result<Vec<Document>> + Send + Sync + 'static,
    ) -> Self {
        self.fusion = Arc::new(f);
        self
    }

    /// Retrieve with the caller's context: callbacks for the rewrite, each retrieval and
    /// the fusion; the context's retrieve options for every query.
    pub async fn retrieve_in(&self, query: &str, ctx: &Context) -> Result<Vec<Document>> {
        let call = start_step(ctx, "QueryRewriteLambda", &query.to_string());
        let qs = end_step(call, self.queries(query).await)?;
        let options = retrieve_options(ctx);
        let lists = join_all(
            qs.iter()
                .map(|q| inner_retrieve(&*self.retriever, q, &options, ctx)),
        )
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        let call = start_step(ctx, "FusionFuncLambda", &lists);
        end_step(call, (self.fusion)(lists))
    }

    /// The queries that will be run for `query`: the distinct rewrites, at most N, or the
    /// query itself if the rewrite gave none.
    pub async fn queries(&self, query: &str) -> Result<Vec<String>> {
        let mut seen = HashSet::new();
        let mut qs: Vec<String> = (self.rewrite)(query.to_string())
            .await?
            .into_iter()
            .filter(|q| seen.insert(q.clone()))
            .take(self.max_queries)
            .collect();
        if qs.is_empty() {
            qs.push(query.to_string());
        }
        Ok(qs)
    }
}

impl Retriever for MultiQueryRetriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        options: &'a RetrieveOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move { self.retrieve_in(query, &context_of(options)).await })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "MultiQuery".into()
    }
}

flow_as_node!(MultiQueryRetriever, "MultiQuery");

type Route = Arc<dyn Fn(String) -> BoxFuture<'static, Result<Vec<String>>> + Send + Sync>;

/// Sends a query to the retrievers a router picks (all of them by default), concurrently,
/// and fuses the lists (reciprocal-rank fusion, k = 60, by default).
#[derive(Clone)]
pub struct RouterRetriever {
    retrievers: Vec<(String, Arc<dyn Retriever>)>,
    router: Option<Route>,
    fusion: FusionFn,
}

impl std::fmt::Debug for RouterRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.retrievers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RouterRetriever")
            .field("retrievers", &names)
            .finish()
    }
}

impl RouterRetriever {
    /// Named retrievers; without a router every one is asked.
    pub fn new<S: Into<String>>(
        retrievers: impl IntoIterator<Item = (S, Arc<dyn Retriever>)>,
    ) -> Self {
        Self {
            retrievers: retrievers.into_iter().map(|(n, r)| (n.into(), r)).collect(),
            router: None,
            fusion: Arc::new(rrf),
        }
    }

    /// Choose retrievers by name for each query.
    pub fn router<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Vec<String>>> + Send + 'static,
    {
        self.router = Some(Arc::new(move |q| Box::pin(f(q))));
        self
    }

    /// Fuse with `f` instead of RRF.
    pub fn fusion(
        mut self,
        f: impl Fn(Vec<Vec<Document>>) -> Result<Vec<Document>> + Send + Sync + 'static,
    ) -> Self {
        self.fusion = Arc::new(f);
        self
    }
}

impl RouterRetriever {
    /// Retrieve with the caller's context: callbacks for the router, each retriever and
    /// the fusion; the context's retrieve options for every retriever.
    pub async fn retrieve_in(&self, query: &str, ctx: &Context) -> Result<Vec<Document>> {
        let options = retrieve_options(ctx);
        let chosen: Vec<&Arc<dyn Retriever>> = match &self.router {
            None => self.retrievers.iter().map(|(_, r)| r).collect(),
            Some(route) => {
                let call = start_step(ctx, "RouterLambda", &query.to_string());
                let names = end_step(call, route(query.to_string()).await)?;
                let mut out = Vec::with_capacity(names.len());
                for n in &names {
                    let r = self.retrievers.iter().find(|(name, _)| name == n);
                    match r {
                        Some((_, r)) => out.push(r),
                        None => {
                            return Err(Error::invalid_input(format!(
                                "router chose unknown retriever '{n}'"
                            )))
                        }
                    }
                }
                out
            }
        };
        let lists = join_all(
            chosen
                .iter()
                .map(|r| inner_retrieve(&***r, query, &options, ctx)),
        )
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        let call = start_step(ctx, "FusionFuncLambda", &lists);
        end_step(call, (self.fusion)(lists))
    }
}

impl Retriever for RouterRetriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        options: &'a RetrieveOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move { self.retrieve_in(query, &context_of(options)).await })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "Router".into()
    }
}

flow_as_node!(RouterRetriever, "Router");

type GetParents =
    Arc<dyn Fn(Vec<String>) -> BoxFuture<'static, Result<Vec<Document>>> + Send + Sync>;

/// Retrieves small chunks, answers with their parent documents (metadata key `parent_key`
/// holds a chunk's parent id; parents in first-hit order, each once).
#[derive(Clone)]
pub struct ParentRetriever {
    retriever: Arc<dyn Retriever>,
    parent_key: String,
    get_parents: GetParents,
}

impl std::fmt::Debug for ParentRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentRetriever")
            .field("parent_key", &self.parent_key)
            .finish()
    }
}

impl ParentRetriever {
    /// Chunks from `retriever`; parents from `get_parents(ids)`.
    pub fn new<F, Fut>(
        retriever: Arc<dyn Retriever>,
        parent_key: impl Into<String>,
        get_parents: F,
    ) -> Self
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Vec<Document>>> + Send + 'static,
    {
        Self {
            retriever,
            parent_key: parent_key.into(),
            get_parents: Arc::new(move |ids| Box::pin(get_parents(ids))),
        }
    }
}

impl ParentRetriever {
    /// Retrieve with the caller's context: callbacks for the chunk retrieval and the parent
    /// lookup; the context's retrieve options for the chunks.
    pub async fn retrieve_in(&self, query: &str, ctx: &Context) -> Result<Vec<Document>> {
        let options = retrieve_options(ctx);
        let chunks = inner_retrieve(&*self.retriever, query, &options, ctx).await?;
        let mut ids: Vec<String> = Vec::new();
        for c in &chunks {
            if let Some(id) = c.metadata.get(&self.parent_key).and_then(|v| v.as_str()) {
                if !ids.iter().any(|x| x == id) {
                    ids.push(id.to_string());
                }
            }
        }
        let call = start_step(ctx, "GetParentsLambda", &ids);
        end_step(call, (self.get_parents)(ids).await)
    }
}

impl Retriever for ParentRetriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        options: &'a RetrieveOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move { self.retrieve_in(query, &context_of(options)).await })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "Parent".into()
    }
}

flow_as_node!(ParentRetriever, "Parent");

type SubIds = Arc<dyn Fn(&str, usize) -> Result<Vec<String>> + Send + Sync>;

/// Splits each document, records the parent id in every chunk's metadata, gives chunks ids
/// from `sub_ids(parent_id, count)`, and stores the chunks.
#[derive(Clone)]
pub struct ParentIndexer {
    indexer: Arc<dyn Indexer>,
    splitter: Arc<dyn Transformer>,
    parent_key: String,
    sub_ids: SubIds,
}

impl std::fmt::Debug for ParentIndexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentIndexer")
            .field("parent_key", &self.parent_key)
            .finish()
    }
}

impl ParentIndexer {
    /// Chunk ids default to `<parent id>_<n>` unless set with [`ParentIndexer::sub_ids`].
    pub fn new(
        indexer: Arc<dyn Indexer>,
        splitter: Arc<dyn Transformer>,
        parent_key: impl Into<String>,
    ) -> Self {
        Self {
            indexer,
            splitter,
            parent_key: parent_key.into(),
            sub_ids: Arc::new(|p, n| Ok((0..n).map(|i| format!("{p}_{i}")).collect())),
        }
    }

    /// Set how chunk ids derive from the parent id; must return `count` ids.
    pub fn sub_ids(
        mut self,
        f: impl Fn(&str, usize) -> Result<Vec<String>> + Send + Sync + 'static,
    ) -> Self {
        self.sub_ids = Arc::new(f);
        self
    }
}

impl Indexer for ParentIndexer {
    fn store<'a>(
        &'a self,
        documents: Vec<Document>,
        options: &'a IndexOptions,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let mut chunks = Vec::new();
            for doc in documents {
                let parent = doc.id.clone();
                let subs = self
                    .splitter
                    .transform(vec![doc], &TransformOptions::default())
                    .await?;
                let ids = (self.sub_ids)(&parent, subs.len())?;
                if ids.len() != subs.len() {
                    return Err(Error::invalid_input(format!(
                        "sub-id generator gave {} ids for {} chunks of '{parent}'",
                        ids.len(),
                        subs.len()
                    )));
                }
                for (mut c, id) in subs.into_iter().zip(ids) {
                    c.id = id;
                    c.metadata.insert(
                        self.parent_key.clone(),
                        serde_json::Value::String(parent.clone()),
                    );
                    chunks.push(c);
                }
            }
            self.indexer.store(chunks, options).await
        })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "Parent".into()
    }
}
