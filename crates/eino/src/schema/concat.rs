//! Joining stream chunks into one value (Eino's `ConcatMessages` and `concatMaps` rules).

use serde_json::Value;

use crate::error::{Error, Result};
use crate::schema::{Map, Message, Part, ResponseMeta, TokenUsage, ToolCall};

/// How the chunks of a stream join into one value.
///
/// Implemented for `String` (joined), [`Message`] (Eino's ConcatMessages rules),
/// `Vec<Message>` (index-aligned), [`Map`] and `serde_json::Value` (key by key), and scalars
/// (last chunk wins). Implement it for your own chunk types:
///
/// ```
/// use eino::schema::Concat;
/// #[derive(Clone, Debug, PartialEq)]
/// struct Tokens(Vec<u32>);
/// impl Concat for Tokens {
///     fn concat(chunks: Vec<Self>) -> eino::Result<Self> {
///         Ok(Tokens(chunks.into_iter().flat_map(|t| t.0).collect()))
///     }
/// }
/// assert_eq!(Tokens::concat(vec![Tokens(vec![1]), Tokens(vec![2, 3])]).unwrap(), Tokens(vec![1, 2, 3]));
/// ```
pub trait Concat: Sized {
    /// Join `chunks` (in stream order) into one value. Callers pass at least one chunk.
    fn concat(chunks: Vec<Self>) -> Result<Self>;
}

impl Concat for String {
    fn concat(chunks: Vec<Self>) -> Result<Self> {
        Ok(chunks.concat())
    }
}

macro_rules! last_wins {
    ($($t:ty),*) => {$(
        impl Concat for $t {
            fn concat(chunks: Vec<Self>) -> Result<Self> {
                chunks.into_iter().last().ok_or_else(|| Error::concat("no chunks"))
            }
        }
        crate::graph_value!($t: concat, serde);
    )*};
}
last_wins!(
    i8,
    i16,
    i32,
    i64,
    isize,
    u8,
    u16,
    u32,
    u64,
    usize,
    f32,
    f64,
    bool,
    ()
);

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

impl Concat for Value {
    /// Strings join, numbers and booleans take the last chunk, objects merge key by key
    /// (recursively); chunks of different JSON types are an error, and so are several
    /// non-empty arrays (there is no general rule for them).
    fn concat(chunks: Vec<Self>) -> Result<Self> {
        let mut iter = chunks.into_iter();
        let Some(first) = iter.next() else {
            return Err(Error::concat("no chunks"));
        };
        let rest: Vec<Value> = iter.collect();
        if rest.is_empty() {
            return Ok(first);
        }
        let ty = json_type(&first);
        if let Some(other) = rest.iter().find(|v| json_type(v) != ty) {
            return Err(Error::concat(format!(
                "unexpected slice element type: {ty} and {}",
                json_type(other)
            )));
        }
        let mut all = Vec::with_capacity(rest.len() + 1);
        all.push(first);
        all.extend(rest);
        match ty {
            "string" => Ok(Value::String(
                all.iter().filter_map(Value::as_str).collect::<String>(),
            )),
            "object" => {
                let maps = all
                    .into_iter()
                    .map(|v| match v {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    })
                    .collect();
                Ok(Value::Object(Map::concat(maps)?))
            }
            "array" | "null" => {
                let mut non_zero: Vec<Value> = all.into_iter().filter(|v| !is_zero(v)).collect();
                match non_zero.len() {
                    0 => Ok(Value::Array(Vec::new())),
                    1 => Ok(non_zero.pop().expect("len is 1")),
                    _ => Err(Error::concat(
                        "cannot concat multiple non-zero value of type array",
                    )),
                }
            }
            _ => Ok(all.pop().expect("non-empty")),
        }
    }
}

impl Concat for Map {
    /// Values are grouped by key across chunks; a key seen once keeps its value, a key seen
    /// several times joins its values with the rules for `serde_json::Value`.
    fn concat(chunks: Vec<Self>) -> Result<Self> {
        let mut grouped: Vec<(String, Vec<Value>)> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        for chunk in chunks {
            for (k, v) in chunk {
                match index.get(&k) {
                    Some(&i) => grouped[i].1.push(v),
                    None => {
                        index.insert(k.clone(), grouped.len());
                        grouped.push((k, vec![v]));
                    }
                }
            }
        }
        let mut out = Map::new();
        for (k, vs) in grouped {
            let v = Value::concat(vs).map_err(|e| {
                Error::concat(format!("failed to concat key '{k}': {}", e.message()))
            })?;
            out.insert(k, v);
        }
        Ok(out)
    }
}

fn first_non_empty(slot: &mut Option<String>, value: Option<String>, what: &str) -> Result<()> {
    match (slot.as_deref(), value) {
        (_, None) => Ok(()),
        (_, Some(v)) if v.is_empty() => Ok(()),
        (None, Some(v)) => {
            *slot = Some(v);
            Ok(())
        }
        (Some(old), Some(v)) if old == v => Ok(()),
        (Some(old), Some(v)) => Err(Error::concat(format!(
            "cannot concat messages with different {what}: '{old}' '{v}'"
        ))),
    }
}

fn merge_string_field(slot: &mut String, value: String, what: &str) -> Result<()> {
    if value.is_empty() || *slot == value {
        return Ok(());
    }
    if slot.is_empty() {
        *slot = value;
        return Ok(());
    }
    Err(Error::concat(format!(
        "cannot concat tool calls with different {what}: '{slot}' '{value}'"
    )))
}

/// Merge tool-call deltas: calls with the same `index` are one call (id, type and name
/// first-non-empty, arguments appended); calls without an index stay separate. Result:
/// index-less calls first, then by ascending index.
pub fn concat_tool_calls(calls: Vec<ToolCall>) -> Result<Vec<ToolCall>> {
    let mut loose = Vec::new();
    let mut indexed: Vec<ToolCall> = Vec::new();
    for call in calls {
        let Some(idx) = call.index else {
            loose.push(call);
            continue;
        };
        match indexed.iter_mut().find(|c| c.index == Some(idx)) {
            None => indexed.push(call),
            Some(acc) => {
                merge_string_field(&mut acc.id, call.id, "ids")?;
                merge_string_field(&mut acc.kind, call.kind, "types")?;
                merge_string_field(&mut acc.function.name, call.function.name, "names")?;
                acc.function.arguments.push_str(&call.function.arguments);
                for (k, v) in call.extra {
                    acc.extra.entry(k).or_insert(v);
                }
            }
        }
    }
    indexed.sort_by_key(|c| c.index);
    loose.extend(indexed);
    Ok(loose)
}

fn max_usage(a: TokenUsage, b: TokenUsage) -> TokenUsage {
    TokenUsage {
        prompt_tokens: a.prompt_tokens.max(b.prompt_tokens),
        cached_tokens: a.cached_tokens.max(b.cached_tokens),
        completion_tokens: a.completion_tokens.max(b.completion_tokens),
        reasoning_tokens: a.reasoning_tokens.max(b.reasoning_tokens),
        total_tokens: a.total_tokens.max(b.total_tokens),
    }
}

fn push_part(parts: &mut Vec<Part>, part: Part) {
    if let (Some(Part::Text { text: last }), Part::Text { text }) = (parts.last_mut(), &part) {
        last.push_str(text);
        return;
    }
    parts.push(part);
}

impl Concat for Message {
    /// Eino's ConcatMessages: content and reasoning appended; role, name and tool-call id must
    /// agree (first non-empty wins, a conflict is an error); tool calls merged by index with
    /// arguments appended; finish reason = last non-empty; each usage field = max; extra maps
    /// joined key by key; adjacent text parts joined.
    fn concat(chunks: Vec<Self>) -> Result<Self> {
        let mut iter = chunks.into_iter();
        let Some(first) = iter.next() else {
            return Err(Error::concat("no chunks"));
        };
        let mut out = Message {
            role: first.role,
            ..Message::default()
        };
        let mut name = None;
        let mut tool_call_id = None;
        let mut reasoning: Option<String> = None;
        let mut calls = Vec::new();
        let mut extras = Vec::new();
        let mut meta: Option<ResponseMeta> = None;
        for chunk in std::iter::once(first).chain(iter) {
            if chunk.role != out.role {
                return Err(Error::concat(format!(
                    "cannot concat messages with different roles: '{}' '{}'",
                    out.role.as_str(),
                    chunk.role.as_str()
                )));
            }
            first_non_empty(&mut name, chunk.name, "names")?;
            first_non_empty(&mut tool_call_id, chunk.tool_call_id, "tool call ids")?;
            out.content.push_str(&chunk.content);
            if let Some(r) = chunk.reasoning {
                reasoning.get_or_insert_with(String::new).push_str(&r);
            }
            calls.extend(chunk.tool_calls);
            for p in chunk.parts {
                push_part(&mut out.parts, p);
            }
            if !chunk.extra.is_empty() {
                extras.push(chunk.extra);
            }
            if let Some(m) = chunk.meta {
                let acc = meta.get_or_insert_with(ResponseMeta::default);
                if let Some(fr) = m.finish_reason.filter(|f| !f.is_empty()) {
                    acc.finish_reason = Some(fr);
                }
                acc.usage = match (acc.usage, m.usage) {
                    (Some(a), Some(b)) => Some(max_usage(a, b)),
                    (a, b) => a.or(b),
                };
            }
        }
        out.name = name;
        out.tool_call_id = tool_call_id;
        out.reasoning = reasoning;
        out.tool_calls = concat_tool_calls(calls)?;
        out.extra = match extras.len() {
            0 => Map::new(),
            1 => extras.pop().expect("len is 1"),
            _ => Map::concat(extras)?,
        };
        out.meta = meta;
        Ok(out)
    }
}

impl Concat for Vec<Message> {
    /// Index-aligned: every chunk must have the same length; position `i` of the result is
    /// the concatenation of position `i` of every chunk.
    fn concat(chunks: Vec<Self>) -> Result<Self> {
        let Some(len) = chunks.first().map(Vec::len) else {
            return Err(Error::concat("no chunks"));
        };
        if chunks.iter().any(|c| c.len() != len) {
            return Err(Error::concat("unexpected array length"));
        }
        let mut columns: Vec<Vec<Message>> = (0..len).map(|_| Vec::new()).collect();
        for chunk in chunks {
            for (i, m) in chunk.into_iter().enumerate() {
                columns[i].push(m);
            }
        }
        columns.into_iter().map(Message::concat).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Role;
    use serde_json::json;

    #[test]
    fn strings_join() {
        let chunks = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(String::concat(chunks).unwrap(), "0123456789");
    }

    #[test]
    fn messages_with_extra_inventory_case_15() {
        let chunks: Vec<Message> = (0..10)
            .map(|i| {
                let mut m = Message::user(i.to_string());
                if i % 4 == 0 {
                    m.extra.insert("key_1".into(), json!(i.to_string()));
                    m.extra.insert(i.to_string(), json!(i.to_string()));
                }
                m
            })
            .collect();
        let m = Message::concat(chunks).unwrap();
        assert_eq!(m.content, "0123456789");
        assert_eq!(
            Value::Object(m.extra),
            json!({"key_1": "048", "0": "0", "4": "4", "8": "8"})
        );
    }

    #[test]
    fn tool_calls_merge_by_index() {
        let chunks = vec![
            Message::assistant(
                "",
                vec![ToolCall::function("c1", "a", "{\"x\"").with_index(0)],
            ),
            Message::assistant("", vec![ToolCall::function("", "", ":1}").with_index(0)]),
            Message::assistant("", vec![ToolCall::function("c2", "b", "{}").with_index(1)]),
            Message::assistant("", vec![ToolCall::function("z", "loose", "{}")]),
        ];
        let m = Message::concat(chunks).unwrap();
        assert_eq!(m.tool_calls.len(), 3);
        assert_eq!(m.tool_calls[0].id, "z");
        assert_eq!(m.tool_calls[1].function.arguments, "{\"x\":1}");
        assert_eq!(m.tool_calls[2].id, "c2");
    }

    #[test]
    fn conflicting_roles_and_ids_fail() {
        let e = Message::concat(vec![Message::user("a"), Message::system("b")]).unwrap_err();
        assert!(e.message().contains("different roles"));
        let e = Message::concat(vec![
            Message::assistant("", vec![ToolCall::function("a", "f", "").with_index(0)]),
            Message::assistant("", vec![ToolCall::function("b", "f", "").with_index(0)]),
        ])
        .unwrap_err();
        assert!(e.message().contains("different ids"));
    }

    #[test]
    fn usage_is_max_and_finish_reason_last() {
        let mut a = Message::new(Role::Assistant, "x");
        a.meta = Some(ResponseMeta {
            finish_reason: None,
            usage: Some(TokenUsage {
                prompt_tokens: 10,
                ..Default::default()
            }),
        });
        let mut b = Message::new(Role::Assistant, "y");
        b.meta = Some(ResponseMeta {
            finish_reason: Some("stop".into()),
            usage: Some(TokenUsage {
                completion_tokens: 5,
                total_tokens: 15,
                ..Default::default()
            }),
        });
        let m = Message::concat(vec![a, b]).unwrap();
        let meta = m.meta.unwrap();
        assert_eq!(meta.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            meta.usage.unwrap(),
            TokenUsage {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
                ..Default::default()
            }
        );
    }

    #[test]
    fn maps_concat_and_type_conflict() {
        let a = json!({"s": "a", "n": 1, "o": {"x": "1"}});
        let b = json!({"s": "b", "n": 2, "o": {"x": "2", "y": true}});
        let out = Value::concat(vec![a, b]).unwrap();
        assert_eq!(out, json!({"s": "ab", "n": 2, "o": {"x": "12", "y": true}}));
        let e = Value::concat(vec![json!({"k": "s"}), json!({"k": 1})]).unwrap_err();
        assert!(e.message().contains("unexpected slice element type"));
    }

    #[test]
    fn vec_messages_index_aligned() {
        let a = vec![Message::user("a"), Message::user("b")];
        let b = vec![Message::user("c"), Message::user("d")];
        let out = Vec::<Message>::concat(vec![a, b]).unwrap();
        assert_eq!(out[0].content, "ac");
        assert_eq!(out[1].content, "bd");
        let e = Vec::<Message>::concat(vec![vec![Message::user("a")], vec![]]).unwrap_err();
        assert!(e.message().contains("unexpected array length"));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Concatenating streamed content pieces gives the whole content, whatever the split.
        #[test]
        fn message_content_is_the_join(parts in proptest::collection::vec(".{0,8}", 1..20)) {
            let chunks: Vec<Message> = parts.iter().map(|p| Message::assistant(p.clone(), vec![])).collect();
            let m = Message::concat(chunks).unwrap();
            prop_assert_eq!(m.content, parts.concat());
        }

        /// Tool-call arguments split at any points reassemble per index.
        #[test]
        fn tool_call_arguments_reassemble(args in "[a-z{}:,\"]{0,40}", cuts in proptest::collection::vec(0usize..40, 0..6)) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= args.len()).collect();
            cuts.sort();
            cuts.dedup();
            let mut pieces = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain([args.len()]) {
                pieces.push(args[last..c].to_string());
                last = c;
            }
            let chunks: Vec<Message> = pieces
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let id = if i == 0 { "call" } else { "" };
                    Message::assistant("", vec![ToolCall::function(id, if i == 0 { "f" } else { "" }, p.clone()).with_index(0)])
                })
                .collect();
            let m = Message::concat(chunks).unwrap();
            prop_assert_eq!(m.tool_calls.len(), 1);
            prop_assert_eq!(&m.tool_calls[0].function.arguments, &args);
            prop_assert_eq!(&m.tool_calls[0].id, "call");
        }

        /// Merging maps with disjoint keys is their union; any shared key is an error.
        #[test]
        fn map_merge_is_union_or_error(a in proptest::collection::btree_map("[a-e]", 0i64..5, 0..5),
                                       b in proptest::collection::btree_map("[a-e]", 0i64..5, 0..5)) {
            let to_map = |m: &std::collections::BTreeMap<String, i64>| -> Map {
                m.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect()
            };
            let merged = crate::compose::merge_maps(vec![to_map(&a), to_map(&b)]);
            let overlap = a.keys().any(|k| b.contains_key(k));
            prop_assert_eq!(merged.is_err(), overlap);
            if let Ok(m) = merged {
                prop_assert_eq!(m.len(), a.len() + b.len());
            }
        }
    }
}
