//! The ADK layer: events, transfer, agent tools, workflow agents, prebuilt agents, cancel,
//! interrupts with addresses and resume from a store. Models are scripted fakes (these
//! tests are about orchestration: the order of events, who runs, what each model is sent).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{call_msg, ScriptedModel};
use eino::adk::prebuilt::plan_execute::{
    plan_execute, ExecutedStep, PlanExecuteConfig, EXECUTED_KEY, RESPONSE_KEY,
};
use eino::adk::prebuilt::supervisor::supervisor;
use eino::adk::{
    Agent, AgentAction, AgentEvent, AgentTool, ChatModelAgent, ChatModelAgentConfig, EventKind,
    LoopAgent, ParallelAgent, ResumeTargets, RunOptions, Runner, SegmentKind, SequentialAgent,
    Team,
};
use eino::component::{tool_fn, ChatModel, Tool, ToolOptions};
use eino::compose::{CheckpointStore, Context, MemoryCheckpointStore, ToolsNode};
use eino::schema::{Message, Role, StreamReader, ToolInfo};
use eino::{Error, ErrorKind};
use futures_util::future::BoxFuture;
use serde_json::json;

fn scripted(script: Vec<Message>) -> ScriptedModel {
    ScriptedModel::new(script)
}

fn agent(name: &str, model: &ScriptedModel, tools: Vec<Arc<dyn Tool>>) -> ChatModelAgentConfig {
    ChatModelAgentConfig::new(name, format!("the {name} agent"), Arc::new(model.clone()))
        .with_tools(ToolsNode::new(tools))
}

fn build(cfg: ChatModelAgentConfig) -> Arc<dyn Agent> {
    Arc::new(ChatModelAgent::new(cfg).unwrap())
}

/// One line per event: `agent: what`.
fn lines(events: &[AgentEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let what = match &e.kind {
                EventKind::Message(m) if m.role == Role::Tool => {
                    format!(
                        "tool {} = {}",
                        m.name.clone().unwrap_or_default(),
                        m.content
                    )
                }
                EventKind::Message(m) if !m.tool_calls.is_empty() => format!(
                    "calls {}",
                    m.tool_calls
                        .iter()
                        .map(|c| c.function.name.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                EventKind::Message(m) => format!("says {}", m.content),
                EventKind::MessageStream { .. } => "stream".into(),
                EventKind::Action(a) => format!("action {a:?}"),
            };
            format!("{}: {what}", e.agent)
        })
        .collect()
}

fn weather() -> Arc<dyn Tool> {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct City {
        city: String,
    }
    Arc::new(tool_fn(
        "weather",
        "Weather in a city",
        |c: City| async move { Ok(format!("sunny in {}", c.city)) },
    ))
}

/// Asks for approval (interrupts) until resumed with `true` or `false`.
struct Approve;

impl Tool for Approve {
    fn info(&self) -> ToolInfo {
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Item {
            item: String,
        }
        ToolInfo::of::<Item>("approve", "Ask a person to approve an item")
    }
    fn call<'a>(
        &'a self,
        args: &'a str,
        o: &'a ToolOptions,
    ) -> BoxFuture<'a, eino::Result<String>> {
        Box::pin(async move {
            match o.resume_data::<bool>() {
                Some(true) => Ok(format!("approved {args}")),
                Some(false) => Ok("denied".into()),
                None => Err(Error::interrupt(
                    json!({ "needs": "approval", "args": args }),
                )),
            }
        })
    }
}

#[tokio::test]
async fn chat_model_agent_reports_each_turn_in_order() {
    let model = scripted(vec![
        call_msg("", &[("c1", "weather", r#"{"city":"Oslo"}"#)]),
        Message::assistant("It is sunny.", vec![]),
    ]);
    let a = build(agent("helper", &model, vec![weather()]).with_output_key("answer"));
    let events = Runner::new(a).query("Weather?").collect().await.unwrap();
    assert_eq!(
        lines(&events),
        [
            "helper: calls weather",
            "helper: tool weather = sunny in Oslo",
            "helper: says It is sunny."
        ]
    );
    assert!(events.iter().all(|e| *e.run_path == ["helper"]));
    // The second model call saw the whole loop.
    assert_eq!(model.received.lock().unwrap()[1].len(), 3);
}

#[tokio::test]
async fn streaming_runs_stream_model_turns_and_instruction_reads_the_session() {
    let model = scripted(vec![Message::assistant("Hello Ada", vec![])]);
    let a = build(agent("helper", &model, vec![]).with_instruction("You help {user}."));
    let mut handle = Runner::new(a).streaming(true).run(
        vec![Message::user("hi")],
        RunOptions::default().with_session_value("user", json!("Ada")),
    );
    let first = handle.next().await.unwrap().unwrap();
    let EventKind::MessageStream { role, stream, .. } = first.kind else {
        panic!("expected a stream event");
    };
    assert_eq!(role, Role::Assistant);
    let chunks = stream.collect_vec().await.unwrap();
    assert_eq!(chunks.len(), 3, "3-character chunks of 'Hello Ada'");
    assert!(handle.next().await.is_none());
    let sent = &model.received.lock().unwrap()[0];
    assert_eq!(sent[0].role, Role::System);
    assert_eq!(sent[0].content, "You help Ada.");
}

#[tokio::test]
async fn max_iterations_and_return_directly_and_exit() {
    let looping = scripted(vec![
        call_msg("", &[("c1", "weather", r#"{"city":"A"}"#)]),
        call_msg("", &[("c2", "weather", r#"{"city":"B"}"#)]),
    ]);
    let a = build(agent("loop", &looping, vec![weather()]).with_max_iterations(1));
    let err = Runner::new(a).query("x").collect().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ExceededMaxSteps);

    // Two calls of a return-directly tool in one turn: the last one is the answer.
    let direct = scripted(vec![call_msg(
        "",
        &[
            ("c1", "weather", r#"{"city":"A"}"#),
            ("c2", "weather", r#"{"city":"B"}"#),
        ],
    )]);
    let a = build(agent("direct", &direct, vec![weather()]).with_return_directly("weather"));
    let events = Runner::new(a).query("x").collect().await.unwrap();
    assert_eq!(
        lines(&events).last().unwrap(),
        "direct: tool weather = sunny in B"
    );

    let exits = scripted(vec![call_msg(
        "",
        &[("c1", "exit", r#"{"final_result":"done"}"#)],
    )]);
    let a = build(agent("exiter", &exits, vec![]).with_exit_tool());
    let events = Runner::new(a).query("x").collect().await.unwrap();
    assert_eq!(
        lines(&events),
        [
            "exiter: calls exit",
            "exiter: tool exit = done",
            "exiter: action Exit"
        ]
    );
}

#[tokio::test]
async fn transfer_runs_the_sub_agent_on_the_rewritten_history() {
    let root = scripted(vec![call_msg(
        "Let me pass you on.",
        &[("t1", "transfer_to_agent", r#"{"agent_name":"billing"}"#)],
    )]);
    let billing = scripted(vec![Message::assistant("Your bill is 10.", vec![])]);
    let team = Team::new(build(agent("root", &root, vec![])))
        .with_sub_agents("root", vec![build(agent("billing", &billing, vec![]))])
        .unwrap();
    let events = Runner::new(Arc::new(team))
        .query("My bill?")
        .collect()
        .await
        .unwrap();
    assert_eq!(
        lines(&events),
        [
            "root: calls transfer_to_agent",
            "root: tool transfer_to_agent = successfully transferred to agent [billing]",
            "root: action TransferTo(\"billing\")",
            "billing: says Your bill is 10."
        ]
    );
    assert_eq!(*events[3].run_path, ["root", "billing"]);
    // The root was offered the transfer tool; billing may transfer back to its parent.
    assert_eq!(*root.tools.lock().unwrap(), ["transfer_to_agent"]);
    assert_eq!(
        *billing.tools.lock().unwrap(),
        ["transfer_to_agent"],
        "back to its parent"
    );
    let sent = &billing.received.lock().unwrap()[0];
    let texts: Vec<(Role, &str)> = sent.iter().map(|m| (m.role, m.content.as_str())).collect();
    assert_eq!(
        texts,
        [
            (Role::User, "My bill?"),
            (
                Role::User,
                "For context: [root] said: Let me pass you on.. [root] called tool: \
                 `transfer_to_agent` with arguments: {\"agent_name\":\"billing\"}."
            ),
            (
                Role::User,
                "For context: [root] `transfer_to_agent` tool returned result: successfully \
                 transferred to agent [billing]."
            ),
        ]
    );
}

#[tokio::test]
async fn a_transfer_to_an_unknown_agent_is_answered_and_the_loop_goes_on() {
    let root = scripted(vec![
        call_msg(
            "",
            &[("t1", "transfer_to_agent", r#"{"agent_name":"nobody"}"#)],
        ),
        Message::assistant("I will answer myself.", vec![]),
    ]);
    let billing = scripted(vec![]);
    let team = Team::new(build(agent("root", &root, vec![])))
        .with_sub_agents("root", vec![build(agent("billing", &billing, vec![]))])
        .unwrap();
    let events = Runner::new(Arc::new(team))
        .query("x")
        .collect()
        .await
        .unwrap();
    let l = lines(&events);
    assert!(l[1].contains("there is no agent named 'nobody'; agents you can transfer to: billing"));
    assert_eq!(l.last().unwrap(), "root: says I will answer myself.");
}

#[tokio::test]
async fn supervisor_gets_the_conversation_back_from_its_specialist() {
    let sup = scripted(vec![
        call_msg(
            "",
            &[("t1", "transfer_to_agent", r#"{"agent_name":"math"}"#)],
        ),
        Message::assistant("The answer is 4.", vec![]),
    ]);
    let math = scripted(vec![Message::assistant("2+2=4", vec![])]);
    let team = supervisor(
        build(agent("sup", &sup, vec![])),
        vec![build(agent("math", &math, vec![]))],
    )
    .unwrap();
    let events = Runner::new(Arc::new(team))
        .query("2+2?")
        .collect()
        .await
        .unwrap();
    assert_eq!(
        lines(&events),
        [
            "sup: calls transfer_to_agent",
            "sup: tool transfer_to_agent = successfully transferred to agent [math]",
            "sup: action TransferTo(\"math\")",
            "math: says 2+2=4",
            "math: calls transfer_to_agent",
            "math: tool transfer_to_agent = successfully transferred to agent [sup]",
            "math: action TransferTo(\"sup\")",
            "sup: says The answer is 4."
        ]
    );
    assert_eq!(*events[7].run_path, ["sup", "math", "sup"]);
    // The supervisor's second call reads the specialist's answer as context.
    let second = &sup.received.lock().unwrap()[1];
    assert!(second
        .iter()
        .any(|m| m.content == "For context: [math] said: 2+2=4."));
}

#[tokio::test]
async fn an_agent_as_a_tool_answers_with_its_last_message() {
    let inner = scripted(vec![
        call_msg("", &[("w1", "weather", r#"{"city":"Rome"}"#)]),
        Message::assistant("Rome: sunny", vec![]),
    ]);
    let researcher = build(agent("researcher", &inner, vec![weather()]));
    let outer = scripted(vec![
        call_msg(
            "",
            &[("r1", "researcher", r#"{"request":"weather in Rome"}"#)],
        ),
        Message::assistant("It is sunny in Rome.", vec![]),
    ]);
    let tool: Arc<dyn Tool> = Arc::new(AgentTool::new(researcher).with_forwarded_events());
    let a = build(agent("main", &outer, vec![tool]));
    let events = Runner::new(a).query("Rome?").collect().await.unwrap();
    assert_eq!(
        lines(&events),
        [
            "main: calls researcher",
            "researcher: calls weather",
            "researcher: tool weather = sunny in Rome",
            "researcher: says Rome: sunny",
            "main: tool researcher = Rome: sunny",
            "main: says It is sunny in Rome."
        ]
    );
    assert_eq!(*events[1].run_path, ["main", "researcher"]);
    assert_eq!(
        inner.received.lock().unwrap()[0][0].content,
        "weather in Rome"
    );
}

/// A model that never answers (to cancel).
struct Stuck;
impl ChatModel for Stuck {
    fn generate<'a>(
        &'a self,
        _: &'a [Message],
        _: &'a eino::component::ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        Box::pin(futures_util::future::pending())
    }
    fn stream<'a>(
        &'a self,
        _: &'a [Message],
        _: &'a eino::component::ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(futures_util::future::pending())
    }
    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(Stuck))
    }
}

#[tokio::test]
async fn cancel_stops_the_run_inside_sub_agents() {
    let stuck = build(ChatModelAgentConfig::new(
        "stuck",
        "never answers",
        Arc::new(Stuck),
    ));
    let outer = scripted(vec![call_msg(
        "",
        &[("s1", "stuck", r#"{"request":"wait"}"#)],
    )]);
    let a = build(agent("main", &outer, vec![Arc::new(AgentTool::new(stuck))]));
    let mut handle = Runner::new(a).query("go");
    assert!(
        handle.next().await.unwrap().is_ok(),
        "the call to the agent tool"
    );
    let cancel = handle.cancel_token();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancel.cancel();
    });
    let end = tokio::time::timeout(Duration::from_secs(10), handle.next())
        .await
        .expect("the run ends once cancelled");
    assert_eq!(end.unwrap().unwrap_err().kind(), ErrorKind::Cancelled);
}

fn approver(name: &str, model: &ScriptedModel) -> Arc<dyn Agent> {
    build(agent(name, model, vec![Arc::new(Approve)]))
}

/// A supervisor whose specialist calls an approval tool, built afresh (as in another
/// process) from scripts.
fn approval_team(sup: &ScriptedModel, clerk: &ScriptedModel) -> Arc<dyn Agent> {
    Arc::new(supervisor(approver("sup", sup), vec![approver("clerk", clerk)]).unwrap())
}

#[tokio::test]
async fn interrupt_deep_in_a_supervisor_resumes_with_data_from_another_runner() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let sup_script = || {
        vec![
            call_msg(
                "",
                &[("t1", "transfer_to_agent", r#"{"agent_name":"clerk"}"#)],
            ),
            Message::assistant("Refund done.", vec![]),
        ]
    };
    let clerk_first = scripted(vec![call_msg(
        "",
        &[("a1", "approve", r#"{"item":"refund"}"#)],
    )]);
    let team = approval_team(&scripted(sup_script()), &clerk_first);
    let opts = RunOptions::default().with_checkpoint_id("run-1");
    let events = Runner::new(team)
        .with_store(store.clone())
        .run(vec![Message::user("refund me")], opts)
        .collect()
        .await
        .unwrap();
    let Some(AgentAction::Interrupted {
        checkpoint_id,
        points,
    }) = events.last().unwrap().action()
    else {
        panic!("expected an interrupt, got {:?}", lines(&events));
    };
    assert_eq!(checkpoint_id.as_deref(), Some("run-1"));
    let roots: Vec<_> = points.iter().filter(|p| p.is_root_cause).collect();
    assert_eq!(roots.len(), 1);
    let root = roots[0];
    assert_eq!(root.id, "agent:sup;agent:clerk;tool:approve:a1");
    assert_eq!(root.address.last().unwrap().kind, SegmentKind::Tool);
    assert_eq!(root.info["needs"], "approval");
    assert!(points
        .iter()
        .any(|p| !p.is_root_cause && p.id == "agent:sup;agent:clerk"));

    // Another "process": new agents, new runner, same store.
    let clerk_after = scripted(vec![Message::assistant("Refund approved.", vec![])]);
    let sup_after = scripted(sup_script().split_off(1));
    let team = approval_team(&sup_after, &clerk_after);
    let targets = ResumeTargets::new().target(root.id.clone(), true).unwrap();
    let events = Runner::new(team)
        .with_store(store.clone())
        .resume("run-1", targets, Context::new())
        .collect()
        .await
        .unwrap();
    assert_eq!(
        lines(&events),
        [
            "clerk: tool approve = approved {\"item\":\"refund\"}",
            "clerk: says Refund approved.",
            "clerk: calls transfer_to_agent",
            "clerk: tool transfer_to_agent = successfully transferred to agent [sup]",
            "clerk: action TransferTo(\"sup\")",
            "sup: says Refund done."
        ]
    );
    // The clerk's loop continued where it was: its model saw the call and the answer.
    let sent = clerk_after.received.lock().unwrap()[0].clone();
    assert_eq!(
        sent.last().unwrap().content,
        "approved {\"item\":\"refund\"}"
    );
    assert!(
        store.get("run-1").await.unwrap().is_none(),
        "deleted once complete"
    );
}

#[tokio::test]
async fn an_untargeted_interrupt_asks_again_and_an_agent_tool_interrupt_has_its_address() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let make = |inner: &ScriptedModel, outer: &ScriptedModel| -> Arc<dyn Agent> {
        let tool: Arc<dyn Tool> = Arc::new(AgentTool::new(approver("clerk", inner)));
        build(agent("main", outer, vec![tool]))
    };
    let inner = scripted(vec![call_msg("", &[("a1", "approve", r#"{"item":"x"}"#)])]);
    let outer = scripted(vec![call_msg(
        "",
        &[("k1", "clerk", r#"{"request":"buy x"}"#)],
    )]);
    let run = || RunOptions::default().with_checkpoint_id("r");
    let events = Runner::new(make(&inner, &outer))
        .with_store(store.clone())
        .run(vec![Message::user("buy")], run())
        .collect()
        .await
        .unwrap();
    let Some(AgentAction::Interrupted { points, .. }) = events.last().unwrap().action() else {
        panic!("expected an interrupt");
    };
    let ids: Vec<(&str, bool)> = points
        .iter()
        .map(|p| (p.id.as_str(), p.is_root_cause))
        .collect();
    let call = "agent:main;tool:clerk:k1";
    let inner_agent = format!("{call};agent:clerk");
    let approval = format!("{inner_agent};tool:approve:a1");
    assert_eq!(
        ids,
        [
            ("agent:main", false),
            (call, false),
            (inner_agent.as_str(), false),
            (approval.as_str(), true)
        ]
    );
    let root_id = points.iter().find(|p| p.is_root_cause).unwrap().id.clone();

    // Resumed without data for it: it asks again, under the same id.
    let again = Runner::new(make(&scripted(vec![]), &scripted(vec![])))
        .with_store(store.clone())
        .resume("r", ResumeTargets::new(), Context::new())
        .collect()
        .await
        .unwrap();
    let Some(AgentAction::Interrupted { points, .. }) = again.last().unwrap().action() else {
        panic!("expected the same interrupt again");
    };
    assert!(points.iter().any(|p| p.is_root_cause && p.id == root_id));

    let inner = scripted(vec![Message::assistant("bought x", vec![])]);
    let outer = scripted(vec![Message::assistant("Done: bought x.", vec![])]);
    let done = Runner::new(make(&inner, &outer))
        .with_store(store.clone())
        .resume(
            "r",
            ResumeTargets::new().target(root_id, true).unwrap(),
            Context::new(),
        )
        .collect()
        .await
        .unwrap();
    assert_eq!(
        lines(&done),
        ["main: tool clerk = bought x", "main: says Done: bought x."]
    );
}

#[tokio::test]
async fn sequential_passes_earlier_work_on_and_loop_stops_on_break() {
    let a = scripted(vec![Message::assistant("draft", vec![])]);
    let b = scripted(vec![Message::assistant("final", vec![])]);
    let seq = SequentialAgent::new(
        "pipeline",
        "writes then edits",
        vec![
            build(agent("writer", &a, vec![])),
            build(agent("editor", &b, vec![])),
        ],
    )
    .unwrap();
    let events = Runner::new(Arc::new(seq))
        .query("write")
        .collect()
        .await
        .unwrap();
    assert_eq!(lines(&events), ["writer: says draft", "editor: says final"]);
    assert_eq!(*events[1].run_path, ["pipeline", "editor"]);
    let sent = b.received.lock().unwrap()[0].clone();
    assert_eq!(sent[1].content, "For context: [writer] said: draft.");

    /// Breaks the loop on its second turn.
    struct Breaker;
    impl Agent for Breaker {
        fn name(&self) -> &str {
            "breaker"
        }
        fn description(&self) -> &str {
            "stops the loop the second time"
        }
        fn run<'a>(
            &'a self,
            _: Vec<Message>,
            run: &'a eino::adk::AgentRun,
        ) -> BoxFuture<'a, eino::Result<Option<AgentAction>>> {
            Box::pin(async move {
                let n: u32 = run.session_get("n").unwrap_or(0) + 1;
                run.session_set("n", n)?;
                Ok(if n == 2 {
                    run.act(AgentAction::BreakLoop)
                } else {
                    None
                })
            })
        }
    }
    let w = scripted(vec![
        Message::assistant("one", vec![]),
        Message::assistant("two", vec![]),
    ]);
    let lp = LoopAgent::new(
        "lp",
        "",
        vec![build(agent("w", &w, vec![])), Arc::new(Breaker)],
        5,
    )
    .unwrap();
    let events = Runner::new(Arc::new(lp))
        .query("go")
        .collect()
        .await
        .unwrap();
    assert_eq!(
        lines(&events),
        ["w: says one", "w: says two", "breaker: action BreakLoop"]
    );
}

#[tokio::test]
async fn parallel_resumes_only_the_interrupted_lane() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let make = |x: &ScriptedModel, y: &ScriptedModel| -> Arc<dyn Agent> {
        Arc::new(
            ParallelAgent::new(
                "both",
                "",
                vec![build(agent("x", x, vec![])), approver("y", y)],
            )
            .unwrap(),
        )
    };
    let x = scripted(vec![Message::assistant("x done", vec![])]);
    let y = scripted(vec![call_msg("", &[("a1", "approve", r#"{"item":"y"}"#)])]);
    let events = Runner::new(make(&x, &y))
        .with_store(store.clone())
        .run(
            vec![Message::user("go")],
            RunOptions::default().with_checkpoint_id("p"),
        )
        .collect()
        .await
        .unwrap();
    assert!(lines(&events).contains(&"x: says x done".to_string()));
    let Some(AgentAction::Interrupted { points, .. }) = events.last().unwrap().action() else {
        panic!("expected an interrupt");
    };
    let id = points.iter().find(|p| p.is_root_cause).unwrap().id.clone();
    assert_eq!(id, "agent:both;agent:y;tool:approve:a1");
    let x2 = scripted(vec![]);
    let y2 = scripted(vec![Message::assistant("y done", vec![])]);
    let events = Runner::new(make(&x2, &y2))
        .with_store(store)
        .resume(
            "p",
            ResumeTargets::new().target(id, false).unwrap(),
            Context::new(),
        )
        .collect()
        .await
        .unwrap();
    assert_eq!(
        lines(&events),
        ["y: tool approve = denied", "y: says y done"]
    );
    assert!(
        x2.received.lock().unwrap().is_empty(),
        "x finished before: not run again"
    );
}

#[tokio::test]
async fn plan_execute_replans_until_it_responds() {
    let planner = scripted(vec![call_msg(
        "",
        &[(
            "p1",
            "plan",
            r#"{"steps":["find the city","get its weather"]}"#,
        )],
    )]);
    let executor = scripted(vec![
        Message::assistant("The city is Oslo.", vec![]),
        call_msg("", &[("w1", "weather", r#"{"city":"Oslo"}"#)]),
        Message::assistant("Oslo is sunny.", vec![]),
    ]);
    let replanner = scripted(vec![
        call_msg("", &[("p2", "plan", r#"{"steps":["get its weather"]}"#)]),
        call_msg("", &[("r1", "respond", r#"{"response":"Sunny in Oslo."}"#)]),
    ]);
    let pe = plan_execute(PlanExecuteConfig::new(
        Arc::new(planner.clone()),
        build(agent("executor", &executor, vec![weather()])),
        Arc::new(replanner.clone()),
    ))
    .unwrap();
    let pe: Arc<dyn Agent> = Arc::new(pe);
    let mut handle = Runner::new(pe).query("What's the weather in the capital of Norway?");
    let mut events = Vec::new();
    while let Some(e) = handle.next().await {
        events.push(e.unwrap());
    }
    assert_eq!(
        lines(&events),
        [
            "planner: calls plan",
            "executor: says The city is Oslo.",
            "replanner: calls plan",
            "executor: calls weather",
            "executor: tool weather = sunny in Oslo",
            "executor: says Oslo is sunny.",
            "replanner: says Sunny in Oslo.",
            "replanner: action BreakLoop"
        ]
    );
    // The second execution was told the first step's result.
    let second = &executor.received.lock().unwrap()[1];
    assert!(second[0].content.contains("Result: The city is Oslo."));
    assert!(second[0]
        .content
        .contains("carry out step 1, \"get its weather\""));
    let _ = (
        EXECUTED_KEY,
        RESPONSE_KEY,
        std::marker::PhantomData::<ExecutedStep>,
    );
}

/// An agent as a graph node: events through a tap, an interrupt of a sub-agent's tool
/// becomes the node's interrupt (saved in the graph's checkpoint), and resume data keyed
/// by the tool call id reaches it.
#[tokio::test]
async fn an_agent_node_interrupts_and_resumes_inside_a_graph() {
    use eino::adk::{AgentNode, EventTap};
    use eino::compose::{CallOption, CheckpointRun, CompileOptions, Graph, Runnable, END, START};
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let graph = |sup: &ScriptedModel, clerk: &ScriptedModel| {
        let mut g = Graph::<Vec<Message>, Message>::new();
        let n = g.add_node("agent", AgentNode::new(approval_team(sup, clerk)));
        g.add_edge(START, n);
        g.add_edge(n, END);
        g.compile(CompileOptions::default().with_checkpoint_store(store.clone()))
            .unwrap()
    };
    let sup = scripted(vec![call_msg(
        "",
        &[("t1", "transfer_to_agent", r#"{"agent_name":"clerk"}"#)],
    )]);
    let clerk = scripted(vec![call_msg("", &[("a1", "approve", r#"{"item":"x"}"#)])]);
    let (tap, mut events) = EventTap::channel();
    let ctx = Context::new()
        .with_option(CallOption::lambda(tap))
        .with_checkpoint(CheckpointRun::new("g1"));
    let e = graph(&sup, &clerk)
        .invoke(vec![Message::user("refund")], &ctx)
        .await
        .unwrap_err();
    let info = e.interrupt_info().unwrap();
    assert_eq!(info.rerun_nodes, ["agent"]);
    let points = info.rerun_info["agent"]["adk_interrupt_points"]
        .as_array()
        .unwrap();
    assert!(points
        .iter()
        .any(|p| p["id"] == "agent:sup;agent:clerk;tool:approve:a1" && p["is_root_cause"] == true));
    let mut seen = Vec::new();
    while let Some(ev) = events.try_next() {
        seen.push(ev.unwrap());
    }
    assert_eq!(lines(&seen)[0], "sup: calls transfer_to_agent");

    let sup = scripted(vec![Message::assistant("Refunded.", vec![])]);
    let clerk = scripted(vec![Message::assistant("approved", vec![])]);
    let resume = CheckpointRun::new("g1")
        .resume_with(["agent"], json!({ "a1": true }))
        .unwrap();
    let out = graph(&sup, &clerk)
        .invoke(vec![], &Context::new().with_checkpoint(resume))
        .await
        .unwrap();
    assert_eq!(out.content, "Refunded.");
    assert_eq!(out.role, Role::Assistant);
}

/// `RunHandle::stop`: the run stops at its next safe point — a `ChatModelAgent` after its
/// model turn, before the tools it asked for; a sequence before its next agent — saves a
/// checkpoint, and a resume goes on from there (the tools run once, nothing is repeated).
#[tokio::test]
async fn stop_at_a_safe_point_then_resume() {
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = |calls: &Arc<std::sync::atomic::AtomicUsize>| -> Arc<dyn Tool> {
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        struct City {
            city: String,
        }
        let calls = calls.clone();
        Arc::new(tool_fn("weather", "Weather", move |c: City| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Ok(format!("sunny in {}", c.city)) }
        }))
    };
    let first = scripted(vec![call_msg(
        "",
        &[("w1", "weather", r#"{"city":"Oslo"}"#)],
    )]);
    let a = build(agent("helper", &first, vec![counted(&calls)]));
    let handle = Runner::new(a).with_store(store.clone()).run(
        vec![Message::user("weather?")],
        RunOptions::default().with_checkpoint_id("s1"),
    );
    handle.stop();
    let events = handle.collect().await.unwrap();
    let Some(AgentAction::Interrupted { points, .. }) = events.last().unwrap().action() else {
        panic!("expected a stop, got {:?}", lines(&events));
    };
    assert_eq!(lines(&events)[0], "helper: calls weather");
    let stop = points.iter().find(|p| p.is_root_cause).unwrap();
    assert_eq!(stop.id, "agent:helper");
    assert!(stop.info["stopped"].is_string());
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no tool ran"
    );

    let rest = scripted(vec![Message::assistant("Sunny.", vec![])]);
    let a = build(agent("helper", &rest, vec![counted(&calls)]));
    let events = Runner::new(a)
        .with_store(store.clone())
        .resume("s1", ResumeTargets::new(), Context::new())
        .collect()
        .await
        .unwrap();
    assert_eq!(
        lines(&events),
        [
            "helper: tool weather = sunny in Oslo",
            "helper: says Sunny."
        ]
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A sequence stops before its next agent and goes on with it.
    let make = |a: &ScriptedModel, b: &ScriptedModel| -> Arc<dyn Agent> {
        Arc::new(
            SequentialAgent::new(
                "seq",
                "",
                vec![build(agent("a", a, vec![])), build(agent("b", b, vec![]))],
            )
            .unwrap(),
        )
    };
    let handle = Runner::new(make(&scripted(vec![]), &scripted(vec![])))
        .with_store(store.clone())
        .run(
            vec![Message::user("go")],
            RunOptions::default().with_checkpoint_id("s2"),
        );
    handle.stop();
    let events = handle.collect().await.unwrap();
    assert!(matches!(
        events.last().unwrap().action(),
        Some(AgentAction::Interrupted { .. })
    ));
    let (a, b) = (
        scripted(vec![Message::assistant("A", vec![])]),
        scripted(vec![Message::assistant("B", vec![])]),
    );
    let events = Runner::new(make(&a, &b))
        .with_store(store)
        .resume("s2", ResumeTargets::new(), Context::new())
        .collect()
        .await
        .unwrap();
    assert_eq!(lines(&events), ["a: says A", "b: says B"]);
}
