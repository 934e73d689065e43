//! An agent run interrupted in one process and resumed in another: a supervisor hands a
//! refund to its clerk agent, whose `refund` tool asks a person first. The run stops, its
//! checkpoint goes to SQLite, the process exits; a later process resumes it by id, giving
//! the waiting tool call (named by its interrupt point id) the reviewer's answer.
//!
//! The two models are rule-based stand-ins so the example runs offline; put real chat
//! models in their place.
//!
//! ```text
//! cargo run -p eino-sqlite --example agent_approval -- start runs.db run-1 "refund order 42"
//! cargo run -p eino-sqlite --example agent_approval -- resume runs.db run-1 POINT_ID yes
//! ```

use std::sync::Arc;

use eino::adk::prebuilt::supervisor::supervisor;
use eino::adk::{
    Agent, AgentAction, ChatModelAgent, ChatModelAgentConfig, EventKind, ResumeTargets, RunOptions,
    Runner,
};
use eino::component::{ChatModel, ChatOptions, Tool, ToolOptions};
use eino::compose::{Context, ToolsNode};
use eino::schema::{Message, Role, StreamReader, ToolCall, ToolInfo};
use eino::Error;
use eino_sqlite::SqliteCheckpointStore;
use futures_util::future::BoxFuture;
use serde_json::json;

/// A stand-in model that answers by a rule over the conversation.
struct Rule(fn(&[Message]) -> Message);

impl ChatModel for Rule {
    fn generate<'a>(
        &'a self,
        m: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        let out = (self.0)(m);
        Box::pin(async move { Ok(out) })
    }
    fn stream<'a>(
        &'a self,
        m: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(StreamReader::once(self.generate(m, o).await?)) })
    }
    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(Rule(self.0)))
    }
}

/// The supervisor: sends the request to the clerk, then reports what the clerk said.
fn supervise(m: &[Message]) -> Message {
    let reported = m
        .iter()
        .rev()
        .find_map(|m| m.content.strip_prefix("For context: [clerk] said: "));
    match reported {
        Some(text) => Message::assistant(format!("Done. {}", text.trim_end_matches('.')), vec![]),
        None => Message::assistant(
            "",
            vec![ToolCall::function(
                "t1",
                "transfer_to_agent",
                r#"{"agent_name":"clerk"}"#,
            )],
        ),
    }
}

/// The clerk: calls `refund` once, then says what it returned.
fn clerk(m: &[Message]) -> Message {
    match m.last() {
        Some(last) if last.role == Role::Tool => {
            Message::assistant(format!("Refund: {}", last.content), vec![])
        }
        _ => {
            let order = m
                .iter()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.clone())
                .unwrap_or_default();
            let args = json!({ "order": order }).to_string();
            Message::assistant("", vec![ToolCall::function("r1", "refund", args)])
        }
    }
}

/// Refunds only once a person said yes.
struct Refund;

impl Tool for Refund {
    fn info(&self) -> ToolInfo {
        ToolInfo::new(
            "refund",
            "Refund an order (a person approves first)",
            json!({"type": "object", "properties": {"order": {"type": "string"}}}),
        )
    }
    fn call<'a>(
        &'a self,
        args: &'a str,
        o: &'a ToolOptions,
    ) -> BoxFuture<'a, eino::Result<String>> {
        Box::pin(async move {
            match o.resume_data::<bool>() {
                Some(true) => Ok(format!("refunded {args}")),
                Some(false) => Ok("the reviewer said no".into()),
                None => Err(Error::interrupt(json!({ "approve refund": args }))),
            }
        })
    }
}

fn team() -> eino::Result<Arc<dyn Agent>> {
    let sup = ChatModelAgentConfig::new("sup", "routes requests", Arc::new(Rule(supervise)));
    let clerk = ChatModelAgentConfig::new("clerk", "handles refunds", Arc::new(Rule(clerk)))
        .with_tools(ToolsNode::new([Arc::new(Refund) as Arc<dyn Tool>]));
    Ok(Arc::new(supervisor(
        Arc::new(ChatModelAgent::new(sup)?),
        vec![Arc::new(ChatModelAgent::new(clerk)?)],
    )?))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: agent_approval start DB ID REQUEST | resume DB ID POINT yes|no";
    let (Some(cmd), Some(db), Some(id)) = (args.first(), args.get(1), args.get(2)) else {
        return Err(usage.into());
    };
    let store = Arc::new(SqliteCheckpointStore::open(db).await?);
    let runner = Runner::new(team()?).with_store(store);
    let mut handle = match (cmd.as_str(), args.get(3), args.get(4)) {
        ("start", Some(request), None) => runner.run(
            vec![Message::user(request.clone())],
            RunOptions::default().with_checkpoint_id(id.clone()),
        ),
        ("resume", Some(point), Some(answer)) => {
            let targets = ResumeTargets::new().target(point.clone(), answer == "yes")?;
            runner.resume(id.clone(), targets, Context::new())
        }
        _ => return Err(usage.into()),
    };
    while let Some(event) = handle.next().await {
        let event = event?;
        match event.kind {
            EventKind::Action(AgentAction::Interrupted { points, .. }) => {
                for p in points.iter().filter(|p| p.is_root_cause) {
                    println!("waiting: {} {}", p.id, p.info);
                }
            }
            EventKind::Message(m) if m.role == Role::Assistant && m.tool_calls.is_empty() => {
                println!("{}: {}", event.agent, m.content)
            }
            _ => {}
        }
    }
    Ok(())
}
