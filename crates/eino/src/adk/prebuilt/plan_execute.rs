//! Plan-execute-replan, like Eino's `prebuilt/planexecute`: a planner writes a plan (a
//! list of steps, as structured output), an executor agent carries out the first step with
//! its tools, a replanner reads what was done and either writes the remaining steps or
//! gives the final answer; the execute/replan loop runs at most `max_iterations` times.
//!
//! Everything is kept in the session: [`PLAN_KEY`] (the remaining steps),
//! [`EXECUTED_KEY`] (each done step and its result), [`INPUT_KEY`] (the user's request)
//! and, at the end, [`RESPONSE_KEY`].

use std::sync::Arc;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adk::{Agent, AgentAction, AgentRun, LoopAgent, SequentialAgent};
use crate::component::{ChatModel, ChatOptions};
use crate::error::{Error, Result};
use crate::schema::{Message, Role, ToolChoice, ToolInfo};

/// Session key of the remaining steps ([`Plan`]).
pub const PLAN_KEY: &str = "plan";
/// Session key of the steps done so far (`Vec<ExecutedStep>`).
pub const EXECUTED_KEY: &str = "executed_steps";
/// Session key of the user's request (text).
pub const INPUT_KEY: &str = "user_input";
/// Session key of the final answer (text).
pub const RESPONSE_KEY: &str = "response";

/// A plan: steps in the order to do them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// The steps, each a self-contained instruction.
    pub steps: Vec<String>,
}

/// A step that was carried out and what it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutedStep {
    /// The step.
    pub step: String,
    /// The executor's result.
    pub result: String,
}

#[derive(Deserialize, JsonSchema)]
struct Respond {
    /// The final answer to the user.
    response: String,
}

const PLAN_TOOL: &str = "plan";
const RESPOND_TOOL: &str = "respond";

fn plan_tool() -> ToolInfo {
    ToolInfo::of::<Plan>(
        PLAN_TOOL,
        "The plan: the steps still to do, in order, each a self-contained instruction.",
    )
}

/// The configuration of [`plan_execute`].
#[derive(Clone)]
pub struct PlanExecuteConfig {
    /// Writes the first plan (called with the `plan` tool forced).
    pub planner: Arc<dyn ChatModel>,
    /// Carries out one step (usually a [`ChatModelAgent`](crate::adk::ChatModelAgent) with
    /// tools).
    pub executor: Arc<dyn Agent>,
    /// Re-plans or answers (called with the `plan` and `respond` tools, one forced).
    pub replanner: Arc<dyn ChatModel>,
    /// Most execute/replan rounds (default 10).
    pub max_iterations: usize,
}

impl std::fmt::Debug for PlanExecuteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanExecuteConfig")
            .field("executor", &self.executor.name())
            .field("max_iterations", &self.max_iterations)
            .finish_non_exhaustive()
    }
}

impl PlanExecuteConfig {
    /// The three parts, with at most 10 rounds.
    pub fn new(
        planner: Arc<dyn ChatModel>,
        executor: Arc<dyn Agent>,
        replanner: Arc<dyn ChatModel>,
    ) -> Self {
        Self {
            planner,
            executor,
            replanner,
            max_iterations: 10,
        }
    }
}

/// The plan-execute-replan agent: `Sequential[planner, Loop[executor, replanner]]`.
pub fn plan_execute(config: PlanExecuteConfig) -> Result<SequentialAgent> {
    let planner = Planner {
        model: config.planner.with_tools(vec![plan_tool()])?,
    };
    let replanner = Replanner {
        model: config.replanner.with_tools(vec![
            plan_tool(),
            ToolInfo::of::<Respond>(
                RESPOND_TOOL,
                "Give the user the final answer: the task is done.",
            ),
        ])?,
    };
    let executor = Executor {
        agent: config.executor,
    };
    let round = LoopAgent::new(
        "execute_replan",
        "executes a step, then re-plans",
        vec![Arc::new(executor), Arc::new(replanner)],
        config.max_iterations,
    )?;
    SequentialAgent::new(
        "plan_execute",
        "plans a task, executes it step by step, re-planning after each step",
        vec![Arc::new(planner), Arc::new(round)],
    )
}

fn forced(name: Option<&str>) -> ChatOptions {
    ChatOptions {
        tool_choice: Some(match name {
            Some(n) => ToolChoice::Named(n.to_string()),
            None => ToolChoice::Forced,
        }),
        ..ChatOptions::default()
    }
}

/// The first tool call's arguments as `T`, or the message's text as JSON.
fn parse<T: for<'de> Deserialize<'de>>(m: &Message, tool: &str) -> Option<T> {
    match m.tool_calls.iter().find(|c| c.function.name == tool) {
        Some(c) => serde_json::from_str(&c.function.arguments).ok(),
        None => serde_json::from_str(m.content.trim()).ok(),
    }
}

fn numbered(steps: &[String]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

fn done_steps(run: &AgentRun) -> Vec<ExecutedStep> {
    run.session_get(EXECUTED_KEY).unwrap_or_default()
}

fn done_text(done: &[ExecutedStep]) -> String {
    if done.is_empty() {
        return "(none yet)".into();
    }
    done.iter()
        .map(|d| format!("Step: {}\nResult: {}", d.step, d.result))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Asks the model for a plan.
struct Planner {
    model: Arc<dyn ChatModel>,
}

impl Agent for Planner {
    fn name(&self) -> &str {
        "planner"
    }
    fn description(&self) -> &str {
        "writes a step-by-step plan"
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>> {
        Box::pin(async move {
            let request = messages
                .iter()
                .filter(|m| m.role == Role::User)
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            let mut prompt = vec![Message::system(
                "Make a step-by-step plan for the user's objective. Each step must be \
                 self-contained and needed; the last step's result is the answer. Call the \
                 `plan` tool with the steps.",
            )];
            prompt.extend(messages);
            let m = self
                .model
                .generate(&prompt, &forced(Some(PLAN_TOOL)))
                .await?;
            run.emit_message(m.clone());
            let plan: Plan = parse(&m, PLAN_TOOL)
                .filter(|p: &Plan| !p.steps.is_empty())
                .ok_or_else(|| {
                    Error::invalid_input("the planner did not return a plan with steps")
                })?;
            run.session_set(INPUT_KEY, request)?;
            run.session_set(PLAN_KEY, plan)?;
            run.session_set(EXECUTED_KEY, Vec::<ExecutedStep>::new())?;
            Ok(None)
        })
    }
}

/// Runs the executor agent on the plan's first step.
struct Executor {
    agent: Arc<dyn Agent>,
}

impl Agent for Executor {
    fn name(&self) -> &str {
        self.agent.name()
    }
    fn description(&self) -> &str {
        self.agent.description()
    }
    fn run<'a>(
        &'a self,
        _: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>> {
        Box::pin(async move {
            let plan: Plan = run
                .session_get(PLAN_KEY)
                .ok_or_else(|| Error::invalid_input("the executor runs without a plan"))?;
            let Some(step) = plan.steps.first().cloned() else {
                return Ok(None);
            };
            let objective: String = run.session_get(INPUT_KEY).unwrap_or_default();
            let mut done = done_steps(run);
            let input = vec![Message::user(format!(
                "Objective: {objective}\n\nPlan:\n{}\n\nDone so far:\n{}\n\nYour task: carry \
                 out step 1, \"{step}\", and report its result.",
                numbered(&plan.steps),
                done_text(&done)
            ))];
            let action = self.agent.run(input, run).await?;
            let result = run
                .history()
                .into_iter()
                .rev()
                .find(|h| {
                    h.agent.as_deref() == Some(run.agent()) && h.message.role == Role::Assistant
                })
                .map(|h| h.message.content.clone())
                .unwrap_or_default();
            done.push(ExecutedStep { step, result });
            run.session_set(EXECUTED_KEY, done)?;
            Ok(action.filter(|a| *a == AgentAction::Exit))
        })
    }
}

/// Re-plans from what was done, or answers.
struct Replanner {
    model: Arc<dyn ChatModel>,
}

impl Agent for Replanner {
    fn name(&self) -> &str {
        "replanner"
    }
    fn description(&self) -> &str {
        "updates the plan or gives the final answer"
    }
    fn run<'a>(
        &'a self,
        _: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>> {
        Box::pin(async move {
            let objective: String = run.session_get(INPUT_KEY).unwrap_or_default();
            let plan: Plan = run.session_get(PLAN_KEY).unwrap_or(Plan { steps: vec![] });
            let done = done_steps(run);
            let prompt = vec![
                Message::system(
                    "You re-plan. If the objective is met, call `respond` with the final \
                     answer. Otherwise call `plan` with only the steps still to do.",
                ),
                Message::user(format!(
                    "Objective: {objective}\n\nThe plan was:\n{}\n\nDone so far:\n{}",
                    numbered(&plan.steps),
                    done_text(&done)
                )),
            ];
            let m = self.model.generate(&prompt, &forced(None)).await?;
            if let Some(r) = parse::<Respond>(&m, RESPOND_TOOL)
                .filter(|_| m.tool_calls.iter().any(|c| c.function.name == RESPOND_TOOL))
            {
                run.emit_message(Message::assistant(r.response.clone(), vec![]));
                run.session_set(RESPONSE_KEY, r.response)?;
                return Ok(run.act(AgentAction::BreakLoop));
            }
            run.emit_message(m.clone());
            let next: Plan = parse(&m, PLAN_TOOL).ok_or_else(|| {
                Error::invalid_input("the replanner neither planned nor answered")
            })?;
            if next.steps.is_empty() {
                return Err(Error::invalid_input(
                    "the replanner returned an empty plan without answering",
                ));
            }
            run.session_set(PLAN_KEY, next)?;
            Ok(None)
        })
    }
}
