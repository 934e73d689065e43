//! What the graph engine needs to know about each value type it moves between nodes:
//! how to copy it, join its stream chunks, and merge it at fan-in. Resolved per type at
//! graph-build time, so nothing is looked up by reflection while a graph runs.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::callbacks::{ActiveCall, Callbacks, RunInfo};
use crate::error::{Error, Result};
use crate::schema::{Concat, Document, Map, Message, StreamReader};

/// A rule joining stream chunks (or fan-in values) into one value.
pub type JoinFn<T> = fn(Vec<T>) -> Result<T>;

/// A type that can flow between graph nodes.
///
/// Implement it for your own types with the [`graph_value!`](crate::graph_value) macro,
/// naming the rules the type supports:
///
/// ```
/// use eino::schema::Concat;
/// #[derive(Clone)]
/// struct Plain(u8);
/// eino::graph_value!(Plain);                 // single-chunk streams only, no fan-in
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Text(String);
/// impl Concat for Text {
///     fn concat(c: Vec<Self>) -> eino::Result<Self> { Ok(Text(c.into_iter().map(|t| t.0).collect())) }
/// }
/// fn merge_texts(v: Vec<Text>) -> eino::Result<Text> { Text::concat(v) }
/// // `serde`: values of this type can be saved in checkpoints.
/// eino::graph_value!(Text: concat, merge = merge_texts, serde);
/// ```
///
/// `compile()` uses these rules to reject graphs that would need a missing one (a
/// streaming node whose chunks cannot be joined, a DAG fan-in without a merge, a
/// checkpointed graph whose values cannot be saved).
pub trait GraphValue: Clone + Send + Sync + 'static {
    /// How stream chunks join; `None`: a stream of this type may carry only one chunk.
    fn concat_rule() -> Option<JoinFn<Self>> {
        None
    }

    /// How values from several predecessors merge at fan-in; `None`: no fan-in.
    fn merge_rule() -> Option<JoinFn<Self>> {
        None
    }

    /// How values are saved in and restored from checkpoints; `None`: a graph carrying
    /// this type cannot checkpoint.
    fn codec() -> Option<Codec<Self>> {
        None
    }

    /// How chunks of `Vec<Self>` join (lets `Vec<Message>` be index-aligned while other
    /// vectors have no rule).
    #[doc(hidden)]
    fn vec_concat_rule() -> Option<JoinFn<Vec<Self>>> {
        None
    }
}

/// Saving a value as JSON and reading it back (checkpoints).
pub struct Codec<T> {
    /// Value to JSON.
    pub encode: fn(&T) -> Result<serde_json::Value>,
    /// JSON to value.
    pub decode: fn(serde_json::Value) -> Result<T>,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Codec<T> {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> {
    /// The codec of a serde type.
    pub fn serde() -> Self {
        Self {
            encode: |v| serde_json::to_value(v).map_err(Error::from),
            decode: |v| {
                serde_json::from_value(v).map_err(|e| {
                    Error::internal(format!(
                        "checkpoint value does not fit type {}: {e}",
                        std::any::type_name::<T>()
                    ))
                })
            },
        }
    }
}

// `&Vec<T>` because it must fit `Codec<Vec<T>>::encode`.
#[allow(clippy::ptr_arg)]
fn encode_vec<T: GraphValue>(v: &Vec<T>) -> Result<serde_json::Value> {
    let c = T::codec().ok_or_else(no_codec::<T>)?;
    v.iter()
        .map(c.encode)
        .collect::<Result<Vec<_>>>()
        .map(serde_json::Value::Array)
}

fn decode_vec<T: GraphValue>(v: serde_json::Value) -> Result<Vec<T>> {
    let c = T::codec().ok_or_else(no_codec::<T>)?;
    match v {
        serde_json::Value::Array(items) => items.into_iter().map(c.decode).collect(),
        other => Err(Error::internal(format!(
            "checkpoint value for a list is not an array: {other}"
        ))),
    }
}

fn encode_option<T: GraphValue>(v: &Option<T>) -> Result<serde_json::Value> {
    let c = T::codec().ok_or_else(no_codec::<T>)?;
    match v {
        None => Ok(serde_json::Value::Null),
        Some(t) => Ok(serde_json::json!({ "some": (c.encode)(t)? })),
    }
}

fn decode_option<T: GraphValue>(v: serde_json::Value) -> Result<Option<T>> {
    let c = T::codec().ok_or_else(no_codec::<T>)?;
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(mut m) => match m.remove("some") {
            Some(inner) => (c.decode)(inner).map(Some),
            None => Err(Error::internal(
                "checkpoint value for an option is malformed",
            )),
        },
        other => Err(Error::internal(format!(
            "checkpoint value for an option is malformed: {other}"
        ))),
    }
}

fn encode_pair<A: GraphValue, B: GraphValue>(v: &(A, B)) -> Result<serde_json::Value> {
    let a = A::codec().ok_or_else(no_codec::<A>)?;
    let b = B::codec().ok_or_else(no_codec::<B>)?;
    Ok(serde_json::Value::Array(vec![
        (a.encode)(&v.0)?,
        (b.encode)(&v.1)?,
    ]))
}

fn decode_pair<A: GraphValue, B: GraphValue>(v: serde_json::Value) -> Result<(A, B)> {
    let a = A::codec().ok_or_else(no_codec::<A>)?;
    let b = B::codec().ok_or_else(no_codec::<B>)?;
    match v {
        serde_json::Value::Array(items) if items.len() == 2 => {
            let mut it = items.into_iter();
            let (x, y) = (it.next(), it.next());
            match (x, y) {
                (Some(x), Some(y)) => Ok(((a.decode)(x)?, (b.decode)(y)?)),
                _ => Err(Error::internal("checkpoint value for a pair is malformed")),
            }
        }
        _ => Err(Error::internal("checkpoint value for a pair is malformed")),
    }
}

pub(crate) fn no_codec<T>() -> Error {
    Error::graph(format!(
        "type {} cannot be saved in a checkpoint; declare it with graph_value!(T: serde)",
        std::any::type_name::<T>()
    ))
}

/// Implement [`GraphValue`] for a type: `graph_value!(T)`, or `graph_value!(T: rules)` with a
/// comma-separated list of `concat` (joins stream chunks with its
/// [`Concat`](crate::schema::Concat) impl), `merge = path::to_fn` (fan-in) and `serde`
/// (checkpoints; needs `Serialize + DeserializeOwned`).
#[macro_export]
macro_rules! graph_value {
    ($t:ty) => {
        impl $crate::compose::GraphValue for $t {}
    };
    ($t:ty : $($rules:tt)+) => {
        impl $crate::compose::GraphValue for $t {
            $crate::graph_value!(@rules $t; $($rules)+);
        }
    };
    (@rules $t:ty; concat $(, $($rest:tt)*)?) => {
        fn concat_rule() -> Option<$crate::compose::JoinFn<Self>> {
            Some(<$t as $crate::schema::Concat>::concat)
        }
        $($crate::graph_value!(@rules $t; $($rest)*);)?
    };
    (@rules $t:ty; merge = $m:path $(, $($rest:tt)*)?) => {
        fn merge_rule() -> Option<$crate::compose::JoinFn<Self>> {
            Some($m)
        }
        $($crate::graph_value!(@rules $t; $($rest)*);)?
    };
    (@rules $t:ty; serde $(, $($rest:tt)*)?) => {
        fn codec() -> Option<$crate::compose::Codec<Self>> {
            Some($crate::compose::Codec::serde())
        }
        $($crate::graph_value!(@rules $t; $($rest)*);)?
    };
    (@rules $t:ty;) => {};
}

crate::graph_value!(String: concat, serde);

impl GraphValue for Message {
    fn concat_rule() -> Option<JoinFn<Self>> {
        Some(Message::concat)
    }
    fn codec() -> Option<Codec<Self>> {
        Some(Codec::serde())
    }
    fn vec_concat_rule() -> Option<JoinFn<Vec<Self>>> {
        Some(<Vec<Message> as Concat>::concat)
    }
}

impl GraphValue for Map {
    fn concat_rule() -> Option<JoinFn<Self>> {
        Some(Map::concat)
    }
    fn merge_rule() -> Option<JoinFn<Self>> {
        Some(merge_maps)
    }
    fn codec() -> Option<Codec<Self>> {
        Some(Codec::serde())
    }
}

impl GraphValue for serde_json::Value {
    fn concat_rule() -> Option<JoinFn<Self>> {
        Some(serde_json::Value::concat)
    }
    fn codec() -> Option<Codec<Self>> {
        Some(Codec::serde())
    }
}

crate::graph_value!(Document: serde);

crate::graph_value!(crate::component::Source: serde);

impl<T: GraphValue> GraphValue for Vec<T> {
    fn concat_rule() -> Option<JoinFn<Self>> {
        T::vec_concat_rule()
    }
    fn codec() -> Option<Codec<Self>> {
        T::codec().map(|_| Codec {
            encode: encode_vec::<T>,
            decode: decode_vec::<T>,
        })
    }
}

impl<T: GraphValue> GraphValue for Option<T> {
    fn codec() -> Option<Codec<Self>> {
        T::codec().map(|_| Codec {
            encode: encode_option::<T>,
            decode: decode_option::<T>,
        })
    }
}

impl<A: GraphValue, B: GraphValue> GraphValue for (A, B) {
    fn codec() -> Option<Codec<Self>> {
        A::codec().and(B::codec()).map(|_| Codec {
            encode: encode_pair::<A, B>,
            decode: decode_pair::<A, B>,
        })
    }
}

/// Fan-in merge of maps: union of keys; a key present in two values is an error.
pub fn merge_maps(values: Vec<Map>) -> Result<Map> {
    let mut out = Map::new();
    for v in values {
        for (k, val) in v {
            if out.contains_key(&k) {
                return Err(Error::concat(format!(
                    "(values merge map) duplicated key ('{k}') found"
                )));
            }
            out.insert(k, val);
        }
    }
    Ok(out)
}

pub(crate) type AnyValue = Box<dyn Any + Send + Sync>;
pub(crate) type AnyStream = Box<dyn Any + Send>;

/// Type-erased operations on one value type, built from its [`GraphValue`] impl.
pub(crate) trait ValueOps: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn has_concat(&self) -> bool;
    fn has_merge(&self) -> bool;
    fn has_codec(&self) -> bool;
    fn encode(&self, v: &AnyValue) -> Result<serde_json::Value>;
    fn decode(&self, v: serde_json::Value) -> Result<AnyValue>;
    fn clone_value(&self, v: &AnyValue) -> AnyValue;
    fn box_stream(&self, v: AnyValue) -> AnyStream;
    fn concat_stream(&self, s: AnyStream) -> BoxFuture<'static, Result<AnyValue>>;
    fn copy_stream(&self, s: AnyStream, n: usize) -> Vec<AnyStream>;
    fn merge_values(&self, vs: Vec<AnyValue>) -> Result<AnyValue>;
    fn merge_streams(&self, ss: Vec<(String, AnyStream)>, named: bool) -> Result<AnyStream>;
    fn callbacks_start_stream(
        &self,
        cbs: &Callbacks,
        info: &RunInfo,
        s: AnyStream,
    ) -> (AnyStream, ActiveCall);
    fn callbacks_end_stream(&self, call: &ActiveCall, s: AnyStream) -> AnyStream;
}

pub(crate) fn ops_of<T: GraphValue>() -> Arc<dyn ValueOps> {
    Arc::new(Ops::<T>(PhantomData))
}

struct Ops<T>(PhantomData<fn() -> T>);

pub(crate) fn downcast<T: 'static>(v: AnyValue) -> Result<T> {
    v.downcast::<T>().map(|b| *b).map_err(|_| {
        Error::internal(format!(
            "runtime type check fail, expected type: {}",
            std::any::type_name::<T>()
        ))
    })
}

pub(crate) fn downcast_stream<T: 'static>(v: AnyStream) -> Result<StreamReader<T>> {
    v.downcast::<StreamReader<T>>().map(|b| *b).map_err(|_| {
        Error::internal(format!(
            "runtime type check fail, expected stream of: {}",
            std::any::type_name::<T>()
        ))
    })
}

/// Join a stream with `T`'s concat rule (a single chunk needs no rule).
pub(crate) async fn concat_typed<T: GraphValue>(s: StreamReader<T>) -> Result<T> {
    s.concat_with(T::concat_rule().unwrap_or(no_concat::<T>))
        .await
}

fn no_concat<T>(_: Vec<T>) -> Result<T> {
    Err(Error::concat(format!(
        "cannot concat multiple non-zero value of type {}",
        std::any::type_name::<T>()
    )))
}

impl<T: GraphValue> ValueOps for Ops<T> {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn has_concat(&self) -> bool {
        T::concat_rule().is_some()
    }
    fn has_merge(&self) -> bool {
        T::merge_rule().is_some()
    }
    fn has_codec(&self) -> bool {
        T::codec().is_some()
    }
    fn encode(&self, v: &AnyValue) -> Result<serde_json::Value> {
        let c = T::codec().ok_or_else(no_codec::<T>)?;
        let t = v
            .downcast_ref::<T>()
            .ok_or_else(|| Error::internal("checkpoint: value of unexpected type"))?;
        (c.encode)(t)
    }
    fn decode(&self, v: serde_json::Value) -> Result<AnyValue> {
        let c = T::codec().ok_or_else(no_codec::<T>)?;
        Ok(Box::new((c.decode)(v)?))
    }
    fn clone_value(&self, v: &AnyValue) -> AnyValue {
        match v.downcast_ref::<T>() {
            Some(t) => Box::new(t.clone()),
            // Unreachable by construction: values are stored with the ops of their own type.
            None => Box::new(()),
        }
    }
    fn box_stream(&self, v: AnyValue) -> AnyStream {
        match v.downcast::<T>() {
            Ok(t) => Box::new(StreamReader::once(*t)),
            Err(_) => Box::new(StreamReader::<T>::empty()),
        }
    }
    fn concat_stream(&self, s: AnyStream) -> BoxFuture<'static, Result<AnyValue>> {
        Box::pin(async move {
            let s = downcast_stream::<T>(s)?;
            Ok(Box::new(concat_typed(s).await?) as AnyValue)
        })
    }
    fn copy_stream(&self, s: AnyStream, n: usize) -> Vec<AnyStream> {
        match s.downcast::<StreamReader<T>>() {
            Ok(s) => s
                .copy(n)
                .into_iter()
                .map(|c| Box::new(c) as AnyStream)
                .collect(),
            Err(_) => Vec::new(),
        }
    }
    fn merge_values(&self, vs: Vec<AnyValue>) -> Result<AnyValue> {
        let Some(rule) = T::merge_rule() else {
            return Err(Error::concat(format!(
                "(mergeValues) unsupported type: {}",
                std::any::type_name::<T>()
            )));
        };
        let typed = vs
            .into_iter()
            .map(downcast::<T>)
            .collect::<Result<Vec<T>>>()
            .map_err(|_| Error::concat("(values merge) field type mismatch"))?;
        Ok(Box::new(rule(typed)?))
    }
    fn merge_streams(&self, ss: Vec<(String, AnyStream)>, named: bool) -> Result<AnyStream> {
        if T::merge_rule().is_none() {
            return Err(Error::concat(format!(
                "(mergeValues | stream type) unsupported chunk type: {}",
                std::any::type_name::<T>()
            )));
        }
        let mut readers = Vec::with_capacity(ss.len());
        for (name, s) in ss {
            readers.push((name, downcast_stream::<T>(s)?));
        }
        let merged = if named {
            StreamReader::merge_named(readers)
        } else {
            StreamReader::merge(readers.into_iter().map(|(_, r)| r).collect())
        };
        Ok(Box::new(merged))
    }
    fn callbacks_start_stream(
        &self,
        cbs: &Callbacks,
        info: &RunInfo,
        s: AnyStream,
    ) -> (AnyStream, ActiveCall) {
        let s = match s.downcast::<StreamReader<T>>() {
            Ok(s) => *s,
            Err(_) => StreamReader::empty(),
        };
        let (s, call) = cbs.start_stream(info, s);
        (Box::new(s), call)
    }
    fn callbacks_end_stream(&self, call: &ActiveCall, s: AnyStream) -> AnyStream {
        match s.downcast::<StreamReader<T>>() {
            Ok(s) => Box::new(call.end_stream(*s)),
            Err(s) => s,
        }
    }
}
