//! The [`Workflow`] builder: a DAG with field-level mappings (its documentation is on the
//! type, which `compose` re-exports).

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compile::{CompileOptions, GraphDef};
use super::field_check::{shape_of, Shape};
use super::graph::Branch;
use super::ids::{End, NodeId, Start, END_ID_PUB, START_ID_PUB};
use super::node::{IntoNode, NodeDef};
use super::plan::{EdgeMap, RunMode};
use super::run::Compiled;
use super::runnable::{Lambda, Runnable};
use super::value::{downcast, downcast_stream, AnyStream, AnyValue, Codec, GraphValue, JoinFn};
use super::Passthrough;
use crate::callbacks::ComponentKind;
use crate::error::{Error, Result};
use crate::schema::{Concat, StreamReader};

type FieldPath = Vec<String>;

/// Field assignments (target path, JSON value) travelling into a workflow node.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Fields(Vec<(FieldPath, Value)>);

fn concat_fields(chunks: Vec<Fields>) -> Result<Fields> {
    let mut out: Vec<(FieldPath, Vec<Value>)> = Vec::new();
    for (path, v) in chunks.into_iter().flat_map(|c| c.0) {
        match out.iter_mut().find(|(p, _)| *p == path) {
            Some((_, vs)) => vs.push(v),
            None => out.push((path, vec![v])),
        }
    }
    out.into_iter()
        .map(|(p, vs)| Value::concat(vs).map(|v| (p, v)))
        .collect::<Result<Vec<_>>>()
        .map(Fields)
}

fn merge_fields(values: Vec<Fields>) -> Result<Fields> {
    // Target paths of different edges are disjoint (checked by compile()).
    Ok(Fields(values.into_iter().flat_map(|f| f.0).collect()))
}

impl GraphValue for Fields {
    fn concat_rule() -> Option<JoinFn<Self>> {
        Some(concat_fields)
    }
    fn merge_rule() -> Option<JoinFn<Self>> {
        Some(merge_fields)
    }
    fn codec() -> Option<Codec<Self>> {
        Some(Codec::serde())
    }
}

type Extract<T> = Arc<dyn Fn(&T) -> Result<Value> + Send + Sync>;

enum MapFrom<T> {
    Path(FieldPath),
    With(Extract<T>),
}

/// One mapping from a source node's output (type `T`) into a field of the target's input.
pub struct FieldMapping<T> {
    from: MapFrom<T>,
    to: FieldPath,
}

impl<T> std::fmt::Debug for FieldMapping<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = match &self.from {
            MapFrom::Path(p) => format!("{p:?}"),
            MapFrom::With(_) => "<closure>".into(),
        };
        write!(f, "FieldMapping({from} -> {:?})", self.to)
    }
}

fn path(p: &[&str]) -> FieldPath {
    p.iter().map(|s| s.to_string()).collect()
}

/// Output field `from` into input field `to`.
pub fn map_fields<T>(from: &str, to: &str) -> FieldMapping<T> {
    map_paths(&[from], &[to])
}

/// Output field `from` as the whole input.
pub fn from_field<T>(from: &str) -> FieldMapping<T> {
    map_paths(&[from], &[])
}

/// The whole output into input field `to`.
pub fn to_field<T>(to: &str) -> FieldMapping<T> {
    map_paths(&[], &[to])
}

/// Nested paths (struct fields or map keys); an empty path is the whole value.
pub fn map_paths<T>(from: &[&str], to: &[&str]) -> FieldMapping<T> {
    FieldMapping {
        from: MapFrom::Path(path(from)),
        to: path(to),
    }
}

/// A typed extractor: `f(&output)` goes into input path `to` (rustc checks the source side).
pub fn map_with<T, R: Serialize>(
    to: &[&str],
    f: impl Fn(&T) -> R + Send + Sync + 'static,
) -> FieldMapping<T> {
    FieldMapping {
        from: MapFrom::With(Arc::new(move |t| Ok(serde_json::to_value(f(t))?))),
        to: path(to),
    }
}

fn get_path<'v>(v: &'v Value, p: &[String]) -> Option<&'v Value> {
    p.iter().try_fold(v, |v, k| v.get(k))
}

fn set_path(root: &mut Value, p: &[String], value: Value) -> Result<()> {
    let Some((last, parents)) = p.split_last() else {
        *root = value;
        return Ok(());
    };
    let mut cur = root;
    for k in parents {
        if cur.is_null() {
            *cur = Value::Object(Default::default());
        }
        cur = match cur {
            Value::Object(m) => m.entry(k.clone()).or_insert(Value::Null),
            _ => {
                return Err(Error::invalid_input(format!(
                    "field '{k}' is not an object"
                )))
            }
        };
    }
    if cur.is_null() {
        *cur = Value::Object(Default::default());
    }
    match cur {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        _ => Err(Error::invalid_input(format!(
            "cannot set field '{last}' of a non-object"
        ))),
    }
}

/// The mappings of one edge, erased: turns the source's output into field assignments.
type Apply = Arc<dyn Fn(&dyn Any, bool) -> Result<Fields> + Send + Sync>;

fn edge_apply<T: GraphValue + Serialize>(source: String, mappings: Vec<FieldMapping<T>>) -> Apply {
    Arc::new(move |any: &dyn Any, lenient: bool| {
        let t = any
            .downcast_ref::<T>()
            .ok_or_else(|| Error::internal("workflow edge value of unexpected type"))?;
        let mut json: Option<Value> = None;
        let mut out = Vec::with_capacity(mappings.len());
        for m in &mappings {
            match &m.from {
                MapFrom::With(f) => out.push((m.to.clone(), f(t)?)),
                MapFrom::Path(p) => {
                    if json.is_none() {
                        json = Some(serde_json::to_value(t)?);
                    }
                    let v = json.as_ref().and_then(|j| get_path(j, p));
                    match v {
                        Some(v) => out.push((m.to.clone(), v.clone())),
                        // A stream chunk may carry only some of the fields.
                        None if lenient => {}
                        None => {
                            return Err(Error::invalid_input(format!(
                                "field path [{}] not found in the output of node '{source}'",
                                p.join(" ")
                            )))
                        }
                    }
                }
            }
        }
        Ok(Fields(out))
    })
}

fn edge_map<T: GraphValue + Serialize>(apply: Apply) -> EdgeMap {
    let stream_apply = apply.clone();
    EdgeMap {
        value: Arc::new(move |v: AnyValue| {
            let t = downcast::<T>(v)?;
            Ok(Box::new(apply(&t, false)?) as AnyValue)
        }),
        stream: Arc::new(move |s: AnyStream| {
            let f = stream_apply.clone();
            let s = downcast_stream::<T>(s)?;
            Ok(Box::new(s.map(move |t| f(&t, true))) as AnyStream)
        }),
    }
}

/// Assemble a node's input from its field assignments and static values.
fn assemble<I: DeserializeOwned + Default>(
    key: &str,
    fields: Fields,
    statics: &[(FieldPath, Value)],
) -> Result<I> {
    if fields.0.is_empty() && statics.is_empty() {
        return Ok(I::default());
    }
    let mut root = Value::Null;
    for (p, v) in fields.0.into_iter().chain(statics.iter().cloned()) {
        set_path(&mut root, &p, v)?;
    }
    serde_json::from_value(root).map_err(|e| {
        Error::invalid_input(format!(
            "the mapped input of workflow node '{key}' does not fit {}: {e}",
            std::any::type_name::<I>()
        ))
    })
}

type Statics = Arc<OnceLock<Vec<(FieldPath, Value)>>>;

/// Wrap a node so that it takes field assignments.
fn wrap<NI, NO>(key: &str, inner: Arc<dyn Runnable<NI, NO>>, statics: Statics) -> Lambda<Fields, NO>
where
    NI: GraphValue + DeserializeOwned + Default,
    NO: GraphValue,
{
    let (k1, k2) = (key.to_string(), key.to_string());
    let (i1, i2) = (inner.clone(), inner);
    let (s1, s2) = (statics.clone(), statics);
    Lambda::new()
        .with_invoke(move |f: Fields, ctx| {
            let (inner, statics, key) = (i1.clone(), s1.clone(), k1.clone());
            async move {
                let input = assemble::<NI>(&key, f, statics.get().map_or(&[][..], |v| v))?;
                inner.invoke(input, &ctx).await
            }
        })
        .with_transform(move |s: StreamReader<Fields>, ctx| {
            let (inner, statics, key) = (i2.clone(), s2.clone(), k2.clone());
            async move {
                let f = concat_fields(s.collect_vec().await?)?;
                let input = assemble::<NI>(&key, f, statics.get().map_or(&[][..], |v| v))?;
                inner.stream(input, &ctx).await
            }
        })
}

/// A typed handle to a workflow node (input `I`, output `O`).
pub struct WorkflowNode<I, O> {
    id: NodeId,
    _p: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for WorkflowNode<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<I, O> Copy for WorkflowNode<I, O> {}

impl<I, O> std::fmt::Debug for WorkflowNode<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkflowNode({})", self.id.index())
    }
}

impl<I, O> WorkflowNode<I, O> {
    /// The id a branch condition returns to pick this node.
    pub fn id(&self) -> NodeId {
        self.id
    }
}

/// Where mapped data comes from: START (the workflow input `GI`) or a node (its output).
pub trait WorkflowSource<T, GI> {
    /// Its index.
    #[doc(hidden)]
    fn source_index(&self) -> usize;
}
impl<GI> WorkflowSource<GI, GI> for Start {
    fn source_index(&self) -> usize {
        START_ID_PUB.index()
    }
}
impl<X, T, GI> WorkflowSource<T, GI> for WorkflowNode<X, T> {
    fn source_index(&self) -> usize {
        self.id.index()
    }
}

/// Where mapped data goes: a node or END.
pub trait WorkflowTarget {
    /// Its index (END is the workflow's output assembler).
    #[doc(hidden)]
    fn target_index(&self, end: usize) -> usize;
}
impl WorkflowTarget for End {
    fn target_index(&self, end: usize) -> usize {
        end
    }
}
impl<I, O> WorkflowTarget for WorkflowNode<I, O> {
    fn target_index(&self, _: usize) -> usize {
        self.id.index()
    }
}

/// One edge being built: its source's mapping function per kind.
struct PendingEdge {
    applies: Vec<Apply>,
    /// Turns the applies into an [`EdgeMap`] for the source's type.
    build: fn(Vec<Apply>) -> EdgeMap,
}

fn build_edge<T: GraphValue + Serialize>(applies: Vec<Apply>) -> EdgeMap {
    edge_map::<T>(Arc::new(move |any, lenient| {
        let mut out = Vec::new();
        for a in &applies {
            out.extend(a(any, lenient)?.0);
        }
        Ok(Fields(out))
    }))
}

/// A DAG whose edges map fields of one node's output into fields of another
/// node's input, with static values, control-only dependencies, data edges that do not
/// make the target wait, and branches that carry no data.
///
/// Values cross a mapping as JSON (serde), so node inputs are `DeserializeOwned + Default`
/// (a node that only has dependencies runs with `Default::default()`) and outputs are
/// `Serialize`. A mapping's source side can be a closure over the typed output (checked by
/// rustc) or a field path (checked when values flow: a missing field is an error naming
/// it). Target paths are checked by `compile()` against the target's input type (its serde
/// shape: field names as serialised, nested structs followed, maps and JSON values open);
/// two mappings into the same field, or into a field and its parent, are an error, as is
/// mapping into a node whose whole input is already mapped.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use eino::compose::{lambda, map_fields, to_field, CompileOptions, Context, Runnable, Workflow, END, START};
/// #[derive(Default, Clone, serde::Deserialize)]
/// struct Greet { name: String, punct: String }
/// eino::graph_value!(Greet);
/// let mut wf = Workflow::<eino::schema::Map, String>::new();
/// let greet = wf.add_node("greet", lambda(|g: Greet| async move { Ok(format!("hello {}{}", g.name, g.punct)) }));
/// wf.add_input(greet, START, vec![map_fields("user", "name")]);
/// wf.set_static_value(greet, &["punct"], "!");
/// wf.add_input(END, greet, vec![]);
/// let app = wf.compile(CompileOptions::default()).unwrap();
/// let input = serde_json::json!({"user": "ada"}).as_object().cloned().unwrap();
/// assert_eq!(app.invoke(input, &Context::new()).await.unwrap(), "hello ada!");
/// # });
/// ```
pub struct Workflow<I, O> {
    def: GraphDef,
    end: usize,
    statics: HashMap<usize, (Statics, Vec<(FieldPath, Value)>)>,
    /// Each target's input shape, traced at compile time to check mapped paths.
    shapes: HashMap<usize, fn() -> Option<Shape>>,
    /// Target paths mapped into each node, for the conflict check.
    targets: HashMap<usize, Vec<FieldPath>>,
    edges: Vec<((usize, usize, bool), PendingEdge)>,
    _p: PhantomData<fn(I) -> O>,
}

impl<I, O> std::fmt::Debug for Workflow<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("nodes", &(self.def.nodes.len() - 3))
            .finish()
    }
}

impl<I, O> Default for Workflow<I, O>
where
    I: GraphValue + Serialize,
    O: GraphValue + DeserializeOwned + Default,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<I, O> Workflow<I, O>
where
    I: GraphValue + Serialize,
    O: GraphValue + DeserializeOwned + Default,
{
    /// An empty workflow.
    pub fn new() -> Self {
        let mut def = GraphDef::new::<I, O>(ComponentKind::Workflow);
        let statics: Statics = Arc::new(OnceLock::new());
        let pass: NodeDef<O, O> = Passthrough::<O>::new().into_node();
        let assembler = wrap::<O, O>("end", pass.runnable, statics.clone())
            .with_kind(ComponentKind::Passthrough)
            .with_type_name("Passthrough")
            .with_callbacks_enabled(true);
        let end = def.add::<Fields, O>("__end".into(), assembler.into_node());
        def.edge(end, END_ID_PUB);
        let mut s = HashMap::new();
        s.insert(end.index(), (statics, Vec::new()));
        let mut shapes: HashMap<usize, fn() -> Option<Shape>> = HashMap::new();
        shapes.insert(end.index(), shape_of::<O>);
        Self {
            def,
            end: end.index(),
            statics: s,
            targets: HashMap::new(),
            shapes,
            edges: Vec::new(),
            _p: PhantomData,
        }
    }

    /// Add a node; connect it with [`add_input`](Self::add_input) and friends.
    pub fn add_node<NI, NO>(
        &mut self,
        key: impl Into<String>,
        node: impl IntoNode<NI, NO>,
    ) -> WorkflowNode<NI, NO>
    where
        NI: GraphValue + DeserializeOwned + Default,
        NO: GraphValue + Serialize,
    {
        let key = key.into();
        let def = node.into_node();
        let statics: Statics = Arc::new(OnceLock::new());
        let wrapped = wrap::<NI, NO>(&key, def.runnable, statics.clone());
        let node = NodeDef {
            runnable: Arc::new(wrapped),
            kind: def.kind,
            typ: def.typ,
            streams_output: def.streams_output,
            is_subgraph: def.is_subgraph,
            error: def.error,
            sub_serde_problem: def.sub_serde_problem,
        };
        let id = self.def.add::<Fields, NO>(key, node);
        self.statics.insert(id.index(), (statics, Vec::new()));
        self.shapes.insert(id.index(), shape_of::<NI>);
        WorkflowNode {
            id,
            _p: PhantomData,
        }
    }

    fn push_edge<T: GraphValue + Serialize>(
        &mut self,
        to: usize,
        from: usize,
        data_only: bool,
        mappings: Vec<FieldMapping<T>>,
    ) {
        let source = self.def.nodes[from].key.clone();
        let paths = self.targets.entry(to).or_default();
        paths.extend(mappings.iter().map(|m| m.to.clone()));
        let apply = edge_apply::<T>(source, mappings);
        let k = (from, to, data_only);
        match self.edges.iter_mut().find(|(key, _)| *key == k) {
            Some((_, e)) => e.applies.push(apply),
            None => self.edges.push((
                k,
                PendingEdge {
                    applies: vec![apply],
                    build: build_edge::<T>,
                },
            )),
        }
    }

    /// Data and dependency: `to` runs after `from` and gets the mapped fields. No mappings
    /// map the whole output to the whole input.
    pub fn add_input<T: GraphValue + Serialize>(
        &mut self,
        to: impl WorkflowTarget,
        from: impl WorkflowSource<T, I>,
        mappings: Vec<FieldMapping<T>>,
    ) {
        self.push_input(to, from, false, mappings);
    }

    fn push_input<T: GraphValue + Serialize>(
        &mut self,
        to: impl WorkflowTarget,
        from: impl WorkflowSource<T, I>,
        data_only: bool,
        mut mappings: Vec<FieldMapping<T>>,
    ) {
        if mappings.is_empty() {
            mappings.push(map_paths(&[], &[]));
        }
        let to = to.target_index(self.end);
        self.push_edge(to, from.source_index(), data_only, mappings);
    }

    /// Data without a direct dependency: `to` gets the fields but waits for `from` only
    /// through other paths (which must exist; `compile()` checks). A branch can then skip
    /// `to` even though it reads `from`'s data.
    pub fn add_data_input<T: GraphValue + Serialize>(
        &mut self,
        to: impl WorkflowTarget,
        from: impl WorkflowSource<T, I>,
        mappings: Vec<FieldMapping<T>>,
    ) {
        self.push_input(to, from, true, mappings);
    }

    /// Dependency without data: `to` runs after `from`.
    pub fn add_dependency<T: GraphValue + Serialize>(
        &mut self,
        to: impl WorkflowTarget,
        from: impl WorkflowSource<T, I>,
    ) {
        let to = to.target_index(self.end);
        self.push_edge::<T>(to, from.source_index(), false, Vec::new());
    }

    /// A fixed value for input path `path` of `to`.
    pub fn set_static_value(
        &mut self,
        to: impl WorkflowTarget,
        path: &[&str],
        value: impl Serialize,
    ) {
        let to = to.target_index(self.end);
        match serde_json::to_value(value) {
            Ok(v) => {
                let p: FieldPath = path.iter().map(|s| s.to_string()).collect();
                self.targets.entry(to).or_default().push(p.clone());
                if let Some((_, list)) = self.statics.get_mut(&to) {
                    list.push((p, v));
                }
            }
            Err(e) => self.def.errors.push(Error::from(e)),
        }
    }

    /// A branch after `from`: picks which of `targets` run. It carries no data; chosen
    /// nodes get data through their own inputs. The condition returns a
    /// [`WorkflowNode::id`] or `END.id()`.
    pub fn add_branch<T: GraphValue + Serialize>(
        &mut self,
        from: impl WorkflowSource<T, I>,
        branch: Branch<T>,
        targets: &[&dyn WorkflowTarget],
    ) {
        let from = from.source_index();
        let assembler = self.def.node_id(self.end);
        let branch = branch.map_ids(move |id| if id == END_ID_PUB { assembler } else { id });
        let mut idx = Vec::with_capacity(targets.len());
        for t in targets {
            let t = t.target_index(self.end);
            idx.push(t);
            // A target without its own edge from `from` gets no data from the branch.
            self.def
                .edge_maps
                .entry((from, t))
                .or_insert_with(|| build_edge::<T>(Vec::new()));
        }
        self.def.branches.push((from, branch.erase(idx)));
    }

    fn check_conflicts(&self) -> Result<()> {
        for (&node, paths) in &self.targets {
            let key = if node == self.end {
                "end"
            } else {
                self.def.nodes[node].key.as_str()
            };
            if let Some(shape) = self.shapes.get(&node).and_then(|f| f()) {
                for p in paths {
                    shape.check(p).map_err(|why| {
                        Error::graph(format!(
                            "field path [{}] does not fit the input of node {key}: {why}",
                            p.join(" ")
                        ))
                    })?;
                }
            }
            for (i, a) in paths.iter().enumerate() {
                for b in &paths[i + 1..] {
                    let prefix = a.iter().zip(b).all(|(x, y)| x == y);
                    if !prefix {
                        continue;
                    }
                    if a.is_empty() || b.is_empty() {
                        return Err(Error::graph(format!(
                            "entire output has already been mapped for node: {key}"
                        )));
                    }
                    return Err(Error::graph(format!(
                        "two terminal field paths conflict for node {key}: [{}], [{}]",
                        a.join(" "),
                        b.join(" ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Validate and freeze (always DAG mode).
    pub fn compile(mut self, opts: CompileOptions) -> Result<Compiled<I, O>> {
        self.check_conflicts()?;
        // END always runs once the others have reported: if branches skipped every node
        // that feeds it, the output is `O::default()` (Go Eino returns a nil map), not an
        // error.
        let start_to_end = (START_ID_PUB.index(), self.end, false);
        if !self.edges.iter().any(|(k, _)| *k == start_to_end) {
            self.push_edge::<I>(self.end, START_ID_PUB.index(), false, Vec::new());
        }
        for ((from, to, data_only), e) in std::mem::take(&mut self.edges) {
            let map = (e.build)(e.applies);
            if data_only {
                self.def.data_edges.push((from, to));
                self.def.data_maps.insert((from, to), map);
            } else {
                self.def.edge(self.def.node_id(from), self.def.node_id(to));
                self.def.edge_maps.insert((from, to), map);
            }
        }
        for (statics, list) in self.statics.into_values() {
            // Each cell is set exactly once, here.
            let _ = statics.set(list);
        }
        let opts = CompileOptions {
            mode: RunMode::Dag,
            name: Some(opts.name.clone().unwrap_or_else(|| "Workflow".into())),
            ..opts
        };
        Ok(Compiled::new(self.def.compile(opts)?))
    }
}
