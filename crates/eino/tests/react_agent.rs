//! The ReAct agent with a scripted tool-calling model (these tests are about the loop, not
//! about model quality): inventory case 30's ReAct parts, the streaming stop check that Go
//! Eino gets wrong, model-call limits, return-directly and structured answers.

mod common;

use std::sync::Arc;

use common::{call_msg, ScriptedModel};
use eino::component::{tool_fn, Tool};
use eino::compose::{CheckpointRun, CompileOptions, Context, MemoryCheckpointStore, ToolsNode};
use eino::flow::react::{ReactAgent, ReactConfig, ToolCallCheck};
use eino::schema::{Message, Role};
use eino::{Error, ErrorKind};
use serde_json::json;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Q {
    q: String,
}

fn search_tool() -> Arc<dyn Tool> {
    Arc::new(tool_fn("search", "Search the web", |a: Q| async move {
        Ok(format!("results for {}", a.q))
    }))
}

fn three_rounds_then_answer() -> Vec<Message> {
    vec![
        call_msg("", &[("1", "search", r#"{"q":"a"}"#)]),
        call_msg("", &[("2", "search", r#"{"q":"b"}"#)]),
        call_msg("", &[("3", "search", r#"{"q":"c"}"#)]),
        Message::assistant("final response", vec![]),
    ]
}

#[tokio::test]
async fn react_generate_modifier_sees_growing_history() {
    let model = ScriptedModel::new(three_rounds_then_answer());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let cfg = ReactConfig::new(Arc::new(model.clone()), ToolsNode::new([search_tool()]))
        .with_message_modifier(move |msgs| {
            s2.lock().unwrap().push(msgs.len());
            msgs
        });
    let agent = ReactAgent::new(cfg).unwrap();
    let out = agent
        .generate(vec![Message::user("go")], &Context::new())
        .await
        .unwrap();
    assert_eq!(out.content, "final response");
    // TestReact: the modifier sees 2 * model_calls + 1 messages each round.
    assert_eq!(*seen.lock().unwrap(), [1, 3, 5, 7]);
    assert_eq!(*model.tools.lock().unwrap(), ["search"]);
    let last = &model.received.lock().unwrap()[3];
    assert_eq!(last[6].role, Role::Tool);
    assert_eq!(last[6].content, "results for c");
}

#[tokio::test]
async fn case30_rewriter_and_modifier() {
    let model = ScriptedModel::new(vec![Message::assistant("final response", vec![])]);
    let cfg = ReactConfig::new(Arc::new(model.clone()), ToolsNode::new([search_tool()]))
        .with_message_rewriter(|msgs| msgs[msgs.len() - 2..].to_vec())
        .with_system_prompt("system prompt");
    let agent = ReactAgent::new(cfg).unwrap();
    let history = vec![
        Message::user("message 1"),
        Message::assistant("response 1", vec![]),
        Message::user("message 2"),
        Message::assistant("response 2", vec![]),
    ];
    let out = agent.generate(history, &Context::new()).await.unwrap();
    assert_eq!(out.content, "final response");
    let got = &model.received.lock().unwrap()[0];
    assert_eq!(
        got,
        &vec![
            Message::system("system prompt"),
            Message::user("message 2"),
            Message::assistant("response 2", vec![]),
        ]
    );
}

#[tokio::test]
async fn streaming_text_before_tool_calls_does_not_stop_the_loop() {
    // Go Eino's first-chunk check ends here with "Let me search." (cloudwego/eino#892).
    let script = vec![
        call_msg("Let me search.", &[("1", "search", r#"{"q":"rust"}"#)]),
        Message::assistant("Rust is a language.", vec![]),
    ];
    let agent = ReactAgent::new(ReactConfig::new(
        Arc::new(ScriptedModel::new(script.clone())),
        ToolsNode::new([search_tool()]),
    ))
    .unwrap();
    let out = agent
        .stream(vec![Message::user("what is rust?")], &Context::new())
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(out.content, "Rust is a language.");

    // The first-chunk check is available, and shows the failure it is known for.
    let eager = ReactAgent::new(
        ReactConfig::new(
            Arc::new(ScriptedModel::new(script)),
            ToolsNode::new([search_tool()]),
        )
        .with_tool_call_check(ToolCallCheck::FirstChunk),
    )
    .unwrap();
    let out = eager
        .stream(vec![Message::user("what is rust?")], &Context::new())
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(out.content, "Let me search.");
}

#[tokio::test]
async fn streamed_tool_call_deltas_are_joined_before_the_tools_run() {
    let model = ScriptedModel::new(three_rounds_then_answer());
    let agent = ReactAgent::new(ReactConfig::new(
        Arc::new(model.clone()),
        ToolsNode::new([search_tool()]),
    ))
    .unwrap();
    let chunks = agent
        .stream(vec![Message::user("go")], &Context::new())
        .await
        .unwrap()
        .collect_vec()
        .await
        .unwrap();
    let text: String = chunks.iter().map(|c| c.content.as_str()).collect();
    assert_eq!(text, "final response");
    assert!(chunks.len() > 1, "the answer streams in chunks");
    let received = model.received.lock().unwrap();
    let tool_answers: Vec<&str> = received[3]
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(
        tool_answers,
        ["results for a", "results for b", "results for c"]
    );
}

#[tokio::test]
async fn model_call_limit() {
    let endless: Vec<Message> = (0..10)
        .map(|i| call_msg("", &[(&i.to_string(), "search", r#"{"q":"x"}"#)]))
        .collect();
    let agent = ReactAgent::new(
        ReactConfig::new(
            Arc::new(ScriptedModel::new(endless)),
            ToolsNode::new([search_tool()]),
        )
        .with_max_model_calls(3),
    )
    .unwrap();
    let e = agent
        .generate(vec![Message::user("loop")], &Context::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ExceededMaxSteps);
    assert!(e.to_string().contains("more than 3 model calls"), "{e}");
}

#[tokio::test]
async fn return_directly_and_failing_tools() {
    let boom: Arc<dyn Tool> = Arc::new(tool_fn("boom", "fails", |_: Q| async {
        Err::<String, _>(Error::invalid_input("disk full"))
    }));
    let lookup: Arc<dyn Tool> = Arc::new(tool_fn("lookup", "", |a: Q| async move {
        Ok(format!("answer: {}", a.q))
    }));
    let script = vec![
        call_msg("", &[("1", "boom", r#"{"q":"x"}"#)]),
        call_msg(
            "",
            &[
                ("2", "search", r#"{"q":"y"}"#),
                ("3", "lookup", r#"{"q":"z"}"#),
            ],
        ),
    ];
    let model = ScriptedModel::new(script);
    let agent = ReactAgent::new(
        ReactConfig::new(
            Arc::new(model.clone()),
            ToolsNode::new([boom, lookup, search_tool()]),
        )
        .with_return_directly("lookup"),
    )
    .unwrap();
    let out = agent
        .generate(vec![Message::user("q")], &Context::new())
        .await
        .unwrap();
    assert_eq!(out.role, Role::Tool);
    assert_eq!(out.content, "answer: z");
    // The failing tool did not end the run: the model read the error and went on.
    let second = &model.received.lock().unwrap()[1];
    assert_eq!(second[2].content, "error: tool 'boom' failed: disk full");
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Verdict {
    label: String,
    confidence: f32,
}

#[tokio::test]
async fn structured_final_answer() {
    let script = vec![call_msg(
        "",
        &[("1", "verdict", r#"{"label":"spam","confidence":0.9}"#)],
    )];
    let model = ScriptedModel::new(script);
    let agent = ReactAgent::new(
        ReactConfig::new(Arc::new(model.clone()), ToolsNode::new([search_tool()]))
            .with_structured_answer::<Verdict>("verdict", "Give the final verdict"),
    )
    .unwrap();
    let v: Verdict = agent
        .generate_structured(vec![Message::user("classify")], &Context::new())
        .await
        .unwrap();
    assert_eq!(
        v,
        Verdict {
            label: "spam".into(),
            confidence: 0.9
        }
    );
    assert_eq!(*model.tools.lock().unwrap(), ["search", "verdict"]);
}

#[tokio::test]
async fn a_tool_can_interrupt_the_agent_and_resume() {
    // A tool asks a human before acting; the whole agent checkpoints and resumes.
    let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a2 = asked.clone();
    let pay: Arc<dyn Tool> = Arc::new(tool_fn("pay", "Pay an invoice", move |a: Q| {
        let first = !a2.swap(true, std::sync::atomic::Ordering::SeqCst);
        async move {
            if first {
                return Err(Error::interrupt(json!({"confirm": a.q})));
            }
            Ok(format!("paid {}", a.q))
        }
    }));
    let script = vec![
        call_msg("", &[("1", "pay", r#"{"q":"inv-7"}"#)]),
        Message::assistant("Invoice inv-7 is paid.", vec![]),
    ];
    let agent = ReactAgent::with_options(
        ReactConfig::new(Arc::new(ScriptedModel::new(script)), ToolsNode::new([pay])),
        CompileOptions::default().with_checkpoint_store(Arc::new(MemoryCheckpointStore::new())),
    )
    .unwrap();
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("t"));
    let e = agent
        .generate(vec![Message::user("pay inv-7")], &ctx)
        .await
        .unwrap_err();
    let info = e.interrupt_info().unwrap();
    assert_eq!(info.rerun_nodes, ["tools"]);
    assert_eq!(
        info.rerun_info["tools"]["rerun_info"]["1"],
        json!({"confirm": "inv-7"})
    );
    let out = agent.generate(vec![], &ctx).await.unwrap();
    assert_eq!(out.content, "Invoice inv-7 is paid.");
}

/// Asks for approval on its first call; re-run, it reads the caller's decision from
/// [`eino::component::ToolOptions::resume_data`].
struct Approved;

impl Tool for Approved {
    fn info(&self) -> eino::schema::ToolInfo {
        eino::schema::ToolInfo::new("pay", "Pay an invoice", json!({"type": "object"}))
    }
    fn call<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a eino::component::ToolOptions,
    ) -> futures_util::future::BoxFuture<'a, eino::Result<String>> {
        Box::pin(async move {
            if !options.is_resumed() {
                return Err(Error::interrupt(json!({ "approve": arguments })));
            }
            #[derive(serde::Deserialize)]
            struct Decision {
                approved: bool,
            }
            Ok(match options.resume_data::<Decision>() {
                Some(Decision { approved: true }) => format!("paid {arguments}"),
                Some(_) => "the user denied the payment".to_string(),
                None => "no decision was given".to_string(),
            })
        })
    }
}

#[tokio::test]
async fn a_resumed_tool_call_reads_its_own_resume_data() {
    let script = vec![
        call_msg(
            "",
            &[
                ("1", "pay", r#"{"q":"inv-7"}"#),
                ("2", "search", r#"{"q":"x"}"#),
            ],
        ),
        call_msg("", &[("3", "pay", r#"{"q":"inv-8"}"#)]),
        Message::assistant("done", vec![]),
    ];
    let model = ScriptedModel::new(script);
    let searches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s2 = searches.clone();
    let search: Arc<dyn Tool> = Arc::new(tool_fn("search", "Search", move |a: Q| {
        s2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok(format!("results for {}", a.q)) }
    }));
    let agent = ReactAgent::with_options(
        ReactConfig::new(
            Arc::new(model.clone()),
            ToolsNode::new([Arc::new(Approved) as Arc<dyn Tool>, search]),
        ),
        CompileOptions::default().with_checkpoint_store(Arc::new(MemoryCheckpointStore::new())),
    )
    .unwrap();
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("r"));
    let e = agent
        .generate(vec![Message::user("pay")], &ctx)
        .await
        .unwrap_err();
    let info = e.interrupt_info().unwrap();
    assert_eq!(info.interrupt_paths(), [vec!["tools".to_string()]]);
    assert_eq!(
        info.rerun_info["tools"]["rerun_info"]["1"]["approve"],
        r#"{"q":"inv-7"}"#
    );
    // Call 1 is denied; the finished search is not run again.
    let ctx = Context::new().with_checkpoint(
        CheckpointRun::new("r")
            .resume_with(
                ["tools"],
                json!({"1": {"approved": false}, "9": {"approved": true}}),
            )
            .unwrap(),
    );
    let e = agent.generate(vec![], &ctx).await.unwrap_err();
    assert_eq!(searches.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The next round's call interrupts afresh: the old decision is not reused.
    let info = e.interrupt_info().unwrap();
    assert!(info.rerun_info["tools"]["rerun_info"]["3"].is_object());
    let ctx = Context::new().with_checkpoint(
        CheckpointRun::new("r")
            .resume_with(["tools"], json!({"3": {"approved": true}}))
            .unwrap(),
    );
    assert_eq!(agent.generate(vec![], &ctx).await.unwrap().content, "done");
    let seen = model.received.lock().unwrap();
    let answers: Vec<&str> = seen[2]
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(
        answers,
        [
            "the user denied the payment",
            "results for x",
            r#"paid {"q":"inv-8"}"#
        ]
    );
    // The re-run tools node did not add its call to the history a second time.
    let roles: Vec<Role> = seen[2].iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Tool,
            Role::Assistant,
            Role::Tool
        ]
    );
}
