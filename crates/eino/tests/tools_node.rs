//! ToolsNode behaviour: inventory case 19 (call order, unknown tools) plus what we do on
//! purpose differently from Go Eino (tool errors and bad JSON answered to the model).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eino::component::{tool_fn, Tool, ToolOptions};
use eino::compose::{
    Context, InvokeNext, Runnable, StreamNext, ToolInput, ToolMiddleware, ToolsNode,
};
use eino::schema::{Message, Role, StreamReader, ToolCall, ToolInfo};
use eino::{Error, ErrorKind};
use futures_util::future::BoxFuture;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct UserArgs {
    name: String,
}

fn salary_tool(delay_ms: u64) -> Arc<dyn Tool> {
    Arc::new(tool_fn(
        "user_salary",
        "Salary of a user",
        move |a: UserArgs| async move {
            // The first call finishes last: order must still follow the calls.
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            Ok(format!("{} earns 100", a.name))
        },
    ))
}

fn company_tool() -> Arc<dyn Tool> {
    Arc::new(tool_fn(
        "user_company",
        "Employer of a user",
        |a: UserArgs| async move { Ok(format!("{} works at bytedance", a.name)) },
    ))
}

fn calls(list: &[(&str, &str, &str)]) -> Message {
    Message::assistant(
        "",
        list.iter()
            .map(|(id, name, args)| ToolCall::function(*id, *name, *args))
            .collect(),
    )
}

#[tokio::test]
async fn case19_order_consistency_invoke_and_stream() {
    let node = ToolsNode::new([salary_tool(30), company_tool()]);
    let input = calls(&[
        ("1", "user_salary", r#"{"name":"zhangsan"}"#),
        ("2", "user_company", r#"{"name":"zhangsan"}"#),
    ]);
    let ctx = Context::new();
    let out = node.invoke(input.clone(), &ctx).await.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].content, "zhangsan earns 100");
    assert_eq!(out[0].tool_call_id.as_deref(), Some("1"));
    assert_eq!(out[0].name.as_deref(), Some("user_salary"));
    assert_eq!(out[1].content, "zhangsan works at bytedance");
    assert_eq!(out[1].tool_call_id.as_deref(), Some("2"));

    let chunks = node
        .stream(input, &ctx)
        .await
        .unwrap()
        .collect_vec()
        .await
        .unwrap();
    assert_eq!(chunks.len(), 2);
    for chunk in &chunks {
        assert_eq!(chunk.len(), 2, "every chunk is aligned to the calls");
        let filled: Vec<usize> = (0..2)
            .filter(|&i| chunk[i].tool_call_id.is_some())
            .collect();
        assert_eq!(filled.len(), 1);
        let i = filled[0];
        assert_eq!(chunk[i].tool_call_id.as_deref(), Some(["1", "2"][i]));
    }
    let joined = <Vec<Message> as eino::schema::Concat>::concat(chunks).unwrap();
    assert_eq!(joined[0].content, "zhangsan earns 100");
    assert_eq!(joined[1].content, "zhangsan works at bytedance");
}

#[tokio::test]
async fn case19_unknown_tools_handler() {
    let node = ToolsNode::new(Vec::<Arc<dyn Tool>>::new())
        .with_unknown_tool_handler(|_: ToolInput| async { Ok("unknown".to_string()) });
    let input = calls(&[("1", "unknown1", "{}"), ("2", "unknown2", "{}")]);
    let ctx = Context::new();
    let out = node.invoke(input.clone(), &ctx).await.unwrap();
    let expect = vec![
        Message::tool("unknown", "1").with_name("unknown1"),
        Message::tool("unknown", "2").with_name("unknown2"),
    ];
    assert_eq!(out, expect);
    let chunks = node
        .stream(input, &ctx)
        .await
        .unwrap()
        .collect_vec()
        .await
        .unwrap();
    assert_eq!(chunks.len(), 2);
    assert!(chunks.iter().all(|c| c.len() == 2));
    let joined = <Vec<Message> as eino::schema::Concat>::concat(chunks).unwrap();
    assert_eq!(joined, expect);
}

#[tokio::test]
async fn input_must_be_assistant_with_calls() {
    let node = ToolsNode::new([company_tool()]);
    let ctx = Context::new();
    let e = node.invoke(Message::user("hi"), &ctx).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "expected message role is Assistant, got user"
    );
    let e = node
        .invoke(Message::assistant("hi", vec![]), &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "no tool call found in input message");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

fn failing_tool() -> Arc<dyn Tool> {
    Arc::new(tool_fn(
        "flaky",
        "Always fails",
        |_: serde_json::Value| async {
            Err::<String, _>(Error::new(ErrorKind::Transient, "upstream timed out"))
        },
    ))
}

#[tokio::test]
async fn tool_errors_unknown_tools_and_bad_json_become_answers() {
    let node = ToolsNode::new([company_tool(), failing_tool()]);
    let input = calls(&[
        ("a", "flaky", "{}"),
        ("b", "nope", "{}"),
        ("c", "user_company", "{not json"),
        ("d", "user_company", r#"{"name":"li"}"#),
        ("e", "user_company", r#"{"nom":"li"}"#),
    ]);
    let out = node.invoke(input, &Context::new()).await.unwrap();
    assert!(out.iter().all(|m| m.role == Role::Tool));
    assert_eq!(
        out[0].content,
        "error: tool 'flaky' failed: upstream timed out"
    );
    assert!(
        out[1].content.contains("tool nope not found"),
        "{}",
        out[1].content
    );
    assert!(out[1]
        .content
        .contains("available tools: [user_company, flaky]"));
    assert!(
        out[2].content.contains("not valid JSON"),
        "{}",
        out[2].content
    );
    assert_eq!(out[3].content, "li works at bytedance");
    assert!(out[4]
        .content
        .contains("invalid arguments for tool 'user_company'"));
    let ids: Vec<_> = out
        .iter()
        .map(|m| m.tool_call_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
}

#[tokio::test]
async fn fail_on_error_reports_the_first_failing_call() {
    let node = ToolsNode::new([company_tool(), failing_tool()]).fail_on_error();
    let input = calls(&[
        ("1", "user_company", r#"{"name":"li"}"#),
        ("2", "flaky", "{}"),
        ("3", "missing", "{}"),
    ]);
    let e = node
        .invoke(input.clone(), &Context::new())
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "failed to invoke tool[name:flaky id:2]: upstream timed out"
    );
    // The cause's classification survives: a caller may retry.
    assert!(e.is_retryable());
    assert!(node.stream(input, &Context::new()).await.is_err());
}

#[tokio::test]
async fn parallel_by_default_sequential_on_request() {
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (a, p) = (active.clone(), peak.clone());
    let slow: Arc<dyn Tool> = Arc::new(tool_fn("slow", "", move |_: serde_json::Value| {
        let (a, p) = (a.clone(), p.clone());
        async move {
            let now = a.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            a.fetch_sub(1, Ordering::SeqCst);
            Ok("done")
        }
    }));
    let input = calls(&[
        ("1", "slow", "{}"),
        ("2", "slow", "{}"),
        ("3", "slow", "{}"),
    ]);
    let node = ToolsNode::new([slow.clone()]);
    node.invoke(input.clone(), &Context::new()).await.unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    peak.store(0, Ordering::SeqCst);
    let node = ToolsNode::new([slow]).sequential();
    node.invoke(input, &Context::new()).await.unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 1);
}

/// Records every call and uppercases results: a middleware sees and may change everything.
struct Audit(Arc<Mutex<Vec<String>>>);

impl ToolMiddleware for Audit {
    fn invoke<'a>(
        &'a self,
        input: ToolInput,
        next: InvokeNext<'a>,
    ) -> BoxFuture<'a, eino::Result<String>> {
        Box::pin(async move {
            self.0.lock().unwrap().push(format!(
                "{}({})#{}",
                input.name, input.arguments, input.call_id
            ));
            Ok(next.run(input).await?.to_uppercase())
        })
    }
    fn stream<'a>(
        &'a self,
        input: ToolInput,
        next: StreamNext<'a>,
    ) -> BoxFuture<'a, eino::Result<StreamReader<String>>> {
        Box::pin(async move {
            self.0
                .lock()
                .unwrap()
                .push(format!("stream {}", input.name));
            Ok(next.run(input).await?.map(|s| Ok(s.to_uppercase())))
        })
    }
}

/// Inner middleware: proves the order (outer sees the inner's output).
struct Suffix;

impl ToolMiddleware for Suffix {
    fn invoke<'a>(
        &'a self,
        input: ToolInput,
        next: InvokeNext<'a>,
    ) -> BoxFuture<'a, eino::Result<String>> {
        Box::pin(async move { Ok(format!("{}!", next.run(input).await?)) })
    }
}

#[tokio::test]
async fn middlewares_and_arguments_handler() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let node = ToolsNode::new([company_tool()])
        .with_middleware(Audit(log.clone()))
        .with_middleware(Suffix)
        .with_arguments_handler(|_, args| Ok(args.replace("'", "\"")));
    let input = calls(&[("x", "user_company", "{'name':'wang'}")]);
    let out = node.invoke(input.clone(), &Context::new()).await.unwrap();
    assert_eq!(out[0].content, "WANG WORKS AT BYTEDANCE!");
    assert_eq!(log.lock().unwrap()[0], r#"user_company({"name":"wang"})#x"#);
    let streamed = node
        .stream(input, &Context::new())
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(streamed[0].content, "WANG WORKS AT BYTEDANCE");
    assert_eq!(log.lock().unwrap()[1], "stream user_company");
}

/// A tool that streams its answer in pieces.
struct Spell;

impl Tool for Spell {
    fn info(&self) -> ToolInfo {
        ToolInfo::new(
            "spell",
            "Spell a word",
            serde_json::json!({"type": "object"}),
        )
    }
    fn call<'a>(&'a self, _: &'a str, _: &'a ToolOptions) -> BoxFuture<'a, eino::Result<String>> {
        Box::pin(async { Ok("abc".to_string()) })
    }
    fn stream<'a>(
        &'a self,
        _: &'a str,
        _: &'a ToolOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<String>>> {
        Box::pin(async {
            Ok(StreamReader::from_vec(vec![
                "a".into(),
                "b".into(),
                "c".into(),
            ]))
        })
    }
}

#[tokio::test]
async fn streaming_tool_chunks_flow_through() {
    let node = ToolsNode::new([Arc::new(Spell) as Arc<dyn Tool>]);
    let input = calls(&[("s", "spell", "")]);
    let chunks = node
        .stream(input, &Context::new())
        .await
        .unwrap()
        .collect_vec()
        .await
        .unwrap();
    let texts: Vec<&str> = chunks.iter().map(|c| c[0].content.as_str()).collect();
    assert_eq!(texts, ["a", "b", "c"]);
}

/// `raw_arguments`: the tool gets the model's argument string as written (Go Eino passes
/// the raw string), JSON or not, empty or not.
#[tokio::test]
async fn raw_arguments_reach_the_tool_unchecked() {
    struct Echo;
    impl eino::component::Tool for Echo {
        fn info(&self) -> eino::schema::ToolInfo {
            eino::schema::ToolInfo::new("echo", "Echo", serde_json::json!({"type": "object"}))
        }
        fn call<'a>(
            &'a self,
            args: &'a str,
            _: &'a eino::component::ToolOptions,
        ) -> futures_util::future::BoxFuture<'a, eino::Result<String>> {
            Box::pin(async move { Ok(format!("<{args}>")) })
        }
    }
    let echo: Arc<dyn eino::component::Tool> = Arc::new(Echo);
    let call = eino::schema::Message::assistant(
        "",
        vec![
            eino::schema::ToolCall::function("1", "echo", "plain words, not JSON"),
            eino::schema::ToolCall::function("2", "echo", ""),
        ],
    );
    let ctx = eino::compose::Context::new();
    let raw = eino::compose::ToolsNode::new([echo.clone()]).raw_arguments();
    let out = raw.run(&call, &ctx).await.unwrap();
    assert_eq!(out[0].content, "<plain words, not JSON>");
    assert_eq!(out[1].content, "<>");
    let checked = eino::compose::ToolsNode::new([echo]);
    let out = checked.run(&call, &ctx).await.unwrap();
    assert!(out[0].content.contains("not valid JSON"));
    assert_eq!(out[1].content, "<{}>");
}
