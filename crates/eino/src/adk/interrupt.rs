//! Interrupts with addresses (Eino's interrupt v2): every point where a run stopped has an
//! address (the agents, tools and nodes that lead to it), an id derived from it, whether it
//! is a root cause (the tool or agent that asked) or only contains one, and the info it
//! reported. A resume targets points by id, each with its own data.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// What one step of an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// An agent, by name.
    Agent,
    /// A tool call: the tool's name, and the call id as `sub_id`.
    Tool,
    /// A graph node, by key.
    GraphNode,
}

/// One step of an interrupt's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSegment {
    /// What it names.
    pub kind: SegmentKind,
    /// The agent name, tool name or node key.
    pub id: String,
    /// The tool call id, for a tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_id: Option<String>,
}

impl AddressSegment {
    /// An agent segment.
    pub fn agent(name: impl Into<String>) -> Self {
        Self {
            kind: SegmentKind::Agent,
            id: name.into(),
            sub_id: None,
        }
    }

    /// A tool-call segment.
    pub fn tool(name: impl Into<String>, call_id: impl Into<String>) -> Self {
        Self {
            kind: SegmentKind::Tool,
            id: name.into(),
            sub_id: Some(call_id.into()),
        }
    }
}

impl fmt::Display for AddressSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            SegmentKind::Agent => "agent",
            SegmentKind::Tool => "tool",
            SegmentKind::GraphNode => "node",
        };
        write!(f, "{kind}:{}", self.id)?;
        if let Some(s) = &self.sub_id {
            write!(f, ":{s}")?;
        }
        Ok(())
    }
}

/// The id of the point at `address`: its segments joined with `;`. Deterministic, so a
/// caller can target a point it learned of in another process.
pub fn point_id(address: &[AddressSegment]) -> String {
    address
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";")
}

/// One place a run stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterruptPoint {
    /// Its id ([`point_id`] of the address): what a resume targets.
    pub id: String,
    /// From the run's root agent down to the point.
    pub address: Vec<AddressSegment>,
    /// What the point reported (for a root cause: what it needs).
    pub info: Value,
    /// True for the tool or agent that asked to stop; false for an agent that contains one.
    pub is_root_cause: bool,
}

impl InterruptPoint {
    /// A point at `address`.
    pub fn new(address: Vec<AddressSegment>, info: Value, is_root_cause: bool) -> Self {
        Self {
            id: point_id(&address),
            address,
            info,
            is_root_cause,
        }
    }
}

/// What an interrupted agent hands to whoever called it: the points below it and the state
/// it needs to continue. Carried inside an [`ErrorKind::Interrupted`] error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AgentInterrupt {
    pub(crate) points: Vec<InterruptPoint>,
    pub(crate) state: Value,
}

/// The key under which an error's interrupt info holds agent interrupt points.
const POINTS_KEY: &str = "adk_interrupt_points";

impl AgentInterrupt {
    /// The interrupt info that carries `points`.
    pub(crate) fn points_info(points: &[InterruptPoint]) -> Value {
        serde_json::json!({ POINTS_KEY: points })
    }

    pub(crate) fn into_error(self) -> Error {
        Error::interrupt_with_state(Self::points_info(&self.points), self.state)
    }

    /// The agent interrupt an error carries, if it is one.
    pub(crate) fn from_error(e: &Error) -> Option<Self> {
        if e.kind() != ErrorKind::Interrupted {
            return None;
        }
        let parts = e.interrupt_parts()?;
        let points = parts.info.as_ref()?.get(POINTS_KEY)?;
        Some(Self {
            points: serde_json::from_value(points.clone()).ok()?,
            state: parts.state.clone().unwrap_or(Value::Null),
        })
    }

    /// The points as a tool's interrupt info (a tool cannot save state of its own, so an
    /// agent tool keeps the inner agent's state beside its points).
    pub(crate) fn into_tool_info(self) -> Value {
        serde_json::json!({ POINTS_KEY: self.points, "state": self.state })
    }

    pub(crate) fn from_tool_info(v: &Value) -> Option<Self> {
        Some(Self {
            points: serde_json::from_value(v.get(POINTS_KEY)?.clone()).ok()?,
            state: v.get("state").cloned().unwrap_or(Value::Null),
        })
    }
}

/// Data for the interrupt points a resume targets, by point id.
///
/// A point not targeted gets no data: a tool asking for an approval then asks again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResumeTargets(pub BTreeMap<String, Value>);

impl ResumeTargets {
    /// No data for any point (everything re-runs as it was).
    pub fn new() -> Self {
        Self::default()
    }

    /// Give `data` to the point `id`.
    pub fn target(mut self, id: impl Into<String>, data: impl Serialize) -> crate::Result<Self> {
        self.0.insert(id.into(), serde_json::to_value(data)?);
        Ok(self)
    }

    /// The data for point `id`.
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.0.get(id)
    }
}
