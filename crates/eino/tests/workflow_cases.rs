//! Workflow field mapping: inventory cases 28 and 29 with their expected values.

use std::sync::Arc;

use eino::compose::{
    from_field, lambda, map_fields, map_paths, map_with, to_field, Branch, CompileOptions, Context,
    Runnable, Workflow, END, START,
};
use eino::prompt::{ChatTemplate, FormatType, MessageTemplate, PromptTemplate};
use eino::schema::{Map, Message};
use serde_json::json;

fn obj(v: serde_json::Value) -> Map {
    v.as_object().cloned().unwrap()
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct S {
    #[serde(rename = "F1", default)]
    f1: String,
}
eino::graph_value!(S: serde);

#[tokio::test]
async fn case28a_map_and_struct_fields_into_end() {
    let mut wf = Workflow::<Map, Map>::new();
    let l1 = wf.add_node(
        "lambda1",
        lambda(|m: Map| async move { Ok(obj(json!({"lambda1": m["lambda1_key"]}))) }),
    );
    let l2 = wf.add_node("lambda2", lambda(|s: S| async move { Ok(S { f1: s.f1 }) }));
    wf.add_input(l1, START, vec![map_fields("map_key", "lambda1_key")]);
    wf.add_input(l2, START, vec![map_fields("map_key", "F1")]);
    wf.add_input(END, l1, vec![map_fields("lambda1", "end_lambda1")]);
    // A typed extractor: rustc checks the source side.
    wf.add_input(
        END,
        l2,
        vec![map_with(&["end_lambda2"], |s: &S| s.f1.clone())],
    );
    let app = wf.compile(CompileOptions::default()).unwrap();
    let out = app
        .invoke(obj(json!({"map_key": "value"})), &Context::new())
        .await
        .unwrap();
    assert_eq!(
        out,
        obj(json!({"end_lambda1": "value", "end_lambda2": "value"}))
    );
    // Stream mode gives the same result.
    let streamed = app
        .stream(obj(json!({"map_key": "value"})), &Context::new())
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(streamed, out);
}

fn query_node(key: &'static str) -> eino::compose::Lambda<Map, String> {
    lambda(move |m: Map| async move { Ok(m["query"].as_str().unwrap_or(key).to_string()) })
}

#[tokio::test]
async fn case28b_fan_in_to_template_and_conflict() {
    let build = |conflict: bool| {
        let mut wf = Workflow::<Map, Vec<Message>>::new();
        let q1 = wf.add_node("q1", query_node("q1"));
        let q2 = wf.add_node("q2", query_node("q2"));
        let tpl: Arc<dyn ChatTemplate> = Arc::new(PromptTemplate::new(
            FormatType::Jinja2,
            vec![MessageTemplate::user("{{q1}}_{{q2}}")],
        ));
        let t = wf.add_node("prompt", tpl);
        wf.add_input(q1, START, vec![]);
        wf.add_input(q2, START, vec![]);
        if conflict {
            wf.add_input(END, q1, vec![to_field("F")]);
            wf.add_input(END, q2, vec![to_field("F")]);
        } else {
            wf.add_input(t, q1, vec![to_field("q1")]);
            wf.add_input(t, q2, vec![to_field("q2")]);
            wf.add_input(END, t, vec![]);
        }
        wf.compile(CompileOptions::default())
    };
    let app = build(false).unwrap();
    let out = app
        .invoke(obj(json!({"query": "query"})), &Context::new())
        .await
        .unwrap();
    assert_eq!(out, vec![Message::user("query_query")]);
    let e = build(true).unwrap_err();
    assert_eq!(
        e.to_string(),
        "two terminal field paths conflict for node end: [F], [F]"
    );
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
struct Two {
    a: String,
    b: String,
}
eino::graph_value!(Two);

#[tokio::test]
async fn case28c_data_edges_without_direct_dependency() {
    let mut wf = Workflow::<String, Map>::new();
    let n1 = wf.add_node(
        "1",
        lambda(|q: String| async move { Ok(format!("{q}_{q}")) }),
    );
    let n2 = wf.add_node(
        "2",
        lambda(|t: Two| async move { Ok(format!("{}_{}", t.a, t.b)) }),
    );
    wf.add_input(n1, START, vec![]);
    wf.add_input(n2, n1, vec![to_field("a")]);
    // START's data reaches "2" without "2" waiting on START directly.
    wf.add_data_input(n2, START, vec![to_field("b")]);
    wf.add_input(END, n1, vec![to_field("1")]);
    wf.add_input(END, n2, vec![to_field("2")]);
    let app = wf.compile(CompileOptions::default()).unwrap();
    let out = app.invoke("query".into(), &Context::new()).await.unwrap();
    assert_eq!(
        out,
        obj(json!({"1": "query_query", "2": "query_query_query"}))
    );

    // A data edge with no dependency path would race: refused.
    let mut wf = Workflow::<String, Map>::new();
    let a = wf.add_node("a", lambda(|q: String| async move { Ok(q) }));
    let b = wf.add_node("b", lambda(|t: Two| async move { Ok(t.a) }));
    wf.add_input(a, START, vec![]);
    wf.add_input(b, START, vec![to_field("a")]);
    wf.add_data_input(b, a, vec![to_field("b")]);
    wf.add_input(END, b, vec![to_field("b")]);
    wf.add_input(END, a, vec![to_field("a")]);
    let e = wf.compile(CompileOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("data edge a -> b has no dependency path"),
        "{e}"
    );
}

fn identity_map() -> eino::compose::Lambda<Map, Map> {
    lambda(|m: Map| async move { Ok(m) })
}

#[tokio::test]
async fn case29_static_values() {
    let mut wf = Workflow::<String, Map>::new();
    let n0 = wf.add_node("0", identity_map());
    wf.set_static_value(n0, &["prefilled"], "yo-ho");
    wf.add_input(n0, START, vec![to_field("start")]);
    wf.add_input(END, n0, vec![]);
    let app = wf.compile(CompileOptions::default()).unwrap();
    let expect = obj(json!({"prefilled": "yo-ho", "start": "hello"}));
    assert_eq!(
        app.invoke("hello".into(), &Context::new()).await.unwrap(),
        expect
    );
    let streamed = app
        .stream("hello".into(), &Context::new())
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(streamed, expect);

    let conflict = |mapping: Vec<eino::compose::FieldMapping<String>>| {
        let mut wf = Workflow::<String, Map>::new();
        let n0 = wf.add_node("0", identity_map());
        wf.set_static_value(n0, &["prefilled"], "yo-ho");
        wf.add_input(n0, START, mapping);
        wf.add_input(END, n0, vec![]);
        wf.compile(CompileOptions::default())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        conflict(vec![]),
        "entire output has already been mapped for node: 0"
    );
    assert_eq!(
        conflict(vec![to_field("prefilled")]),
        "two terminal field paths conflict for node 0: [prefilled], [prefilled]"
    );

    // Nested static paths build nested maps.
    let mut wf = Workflow::<String, Map>::new();
    let n = wf.add_node("n", identity_map());
    wf.set_static_value(n, &["a", "b", "c"], 1);
    wf.add_input(n, START, vec![map_paths(&[], &["a", "s"])]);
    wf.add_input(END, n, vec![]);
    let out = wf
        .compile(CompileOptions::default())
        .unwrap()
        .invoke("x".into(), &Context::new())
        .await
        .unwrap();
    assert_eq!(out, obj(json!({"a": {"b": {"c": 1}, "s": "x"}})));
}

#[tokio::test]
async fn case29_dependency_without_input() {
    let mut wf = Workflow::<Map, Map>::new();
    let zero = wf.add_node(
        "zero",
        lambda(|m: Map| async move { Ok(obj(json!({"result": m.len()}))) }),
    );
    wf.add_dependency(zero, START);
    wf.add_input(END, zero, vec![to_field("final_result")]);
    wf.add_input(END, START, vec![to_field("final_from_start")]);
    let app = wf.compile(CompileOptions::default()).unwrap();
    let out = app
        .invoke(obj(json!({"input": "hello"})), &Context::new())
        .await
        .unwrap();
    assert_eq!(
        out,
        obj(json!({"final_result": {"result": 0}, "final_from_start": {"input": "hello"}}))
    );
}

#[tokio::test]
async fn case29_branch_carries_no_data() {
    let mut wf = Workflow::<String, Map>::new();
    let n1 = wf.add_node(
        "1",
        lambda(|q: String| async move { Ok(format!("{q}_{q}")) }),
    );
    // "1" reads START's data but only runs when the branch picks it.
    wf.add_data_input(n1, START, vec![]);
    let id1 = n1.id();
    wf.add_branch(
        START,
        Branch::new(move |q: &String| Ok(if q == "hello" { id1 } else { END.id() })),
        &[&n1, &END],
    );
    wf.add_input(END, n1, vec![to_field("1")]);
    wf.add_data_input(END, START, vec![to_field("start")]);
    let app = wf.compile(CompileOptions::default()).unwrap();
    let out = app.invoke("hello".into(), &Context::new()).await.unwrap();
    assert_eq!(out, obj(json!({"1": "hello_hello", "start": "hello"})));
    let out = app.invoke("world".into(), &Context::new()).await.unwrap();
    assert_eq!(out, obj(json!({"start": "world"})));

    // A branch that skips END's only data source: the output is empty (Go: a nil map).
    let mut wf = Workflow::<String, Map>::new();
    let n1 = wf.add_node("1", lambda(|q: String| async move { Ok(q) }));
    wf.add_data_input(n1, START, vec![]);
    let id1 = n1.id();
    wf.add_branch(
        START,
        Branch::new(move |q: &String| Ok(if q == "go" { id1 } else { END.id() })),
        &[&n1, &END],
    );
    wf.add_input(END, n1, vec![to_field("1")]);
    let app = wf.compile(CompileOptions::default()).unwrap();
    assert_eq!(
        app.invoke("stop".into(), &Context::new()).await.unwrap(),
        Map::new()
    );
    assert_eq!(
        app.invoke("go".into(), &Context::new()).await.unwrap(),
        obj(json!({"1": "go"}))
    );
}

#[tokio::test]
async fn missing_field_and_bad_shape_are_clear_errors() {
    let mut wf = Workflow::<Map, String>::new();
    let n = wf.add_node("n", lambda(|s: String| async move { Ok(s) }));
    wf.add_input(n, START, vec![from_field("absent")]);
    wf.add_input(END, n, vec![]);
    let app = wf.compile(CompileOptions::default()).unwrap();
    let e = app
        .invoke(obj(json!({"x": 1})), &Context::new())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("field path [absent] not found in the output of node 'start'"),
        "{e}"
    );
    let e = app
        .invoke(obj(json!({"absent": 5})), &Context::new())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the mapped input of workflow node 'n' does not fit"),
        "{e}"
    );
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
struct Nested {
    #[serde(rename = "outerName")]
    outer: Inner,
    plain: String,
}
#[derive(Debug, Default, Clone, serde::Deserialize)]
struct Inner {
    leaf: String,
}
eino::graph_value!(Nested);

#[tokio::test]
async fn target_paths_are_checked_against_the_input_type() {
    let build = |to: &[&str]| {
        let mut wf = Workflow::<String, String>::new();
        let n = wf.add_node(
            "n",
            lambda(|x: Nested| async move { Ok(x.outer.leaf + &x.plain) }),
        );
        wf.add_input(n, START, vec![map_paths(&[], to)]);
        wf.set_static_value(n, &["plain"], "!");
        wf.add_input(END, n, vec![]);
        wf.compile(CompileOptions::default())
    };
    let app = build(&["outerName", "leaf"]).unwrap();
    assert_eq!(
        app.invoke("hi".into(), &Context::new()).await.unwrap(),
        "hi!"
    );
    let e = build(&["outer", "leaf"]).unwrap_err().to_string();
    assert!(
        e.contains("Nested has no field 'outer' (fields: outerName, plain)"),
        "{e}"
    );
    let e = build(&["plain", "deeper"]).unwrap_err().to_string();
    assert!(
        e.contains("[plain] is a string, it has no field 'deeper'"),
        "{e}"
    );
    // Maps are open: any key goes.
    let mut wf = Workflow::<String, Map>::new();
    let n = wf.add_node("m", identity_map());
    wf.add_input(n, START, vec![map_paths(&[], &["any", "depth"])]);
    wf.add_input(END, n, vec![]);
    assert!(wf.compile(CompileOptions::default()).is_ok());
}
