//! The shape of a compiled graph, for tools and UIs: nodes, edges and branches as data
//! (serializable to JSON) and as a Mermaid flowchart.

use serde::{Deserialize, Serialize};

use super::run::Compiled;
use super::GraphValue;

/// One node of a [`Topology`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyNode {
    /// The node key (`start` and `end` for the terminals).
    pub key: String,
    /// The component kind (`ChatModel`, `Lambda`, `Graph` …).
    pub component: String,
    /// The implementation type reported to callbacks.
    pub typ: String,
}

/// How a [`TopologyEdge`] passes control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// A plain edge: data and control.
    Edge,
    /// A possible target of a branch.
    Branch,
    /// Data only (Workflow): the target gets the value but does not wait for it.
    Data,
}

/// One edge of a [`Topology`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyEdge {
    /// Source node key.
    pub from: String,
    /// Target node key.
    pub to: String,
    /// The edge kind.
    pub kind: EdgeKind,
}

/// A compiled graph's nodes and edges.
///
/// ```
/// use eino::compose::{lambda, Chain};
/// let app = Chain::<String, String>::new()
///     .then_keyed("upper", lambda(|s: String| async move { Ok(s.to_uppercase()) }))
///     .compile()
///     .unwrap();
/// let t = app.topology();
/// assert_eq!(t.nodes.len(), 3);
/// assert!(t.to_mermaid().contains("start --> upper"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The graph's name.
    pub name: String,
    /// Nodes: start, end, then the others in the order they were added.
    pub nodes: Vec<TopologyNode>,
    /// Edges in declaration order.
    pub edges: Vec<TopologyEdge>,
}

fn mermaid_id(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Topology {
    /// A Mermaid `flowchart TD`: plain edges `-->`, branch targets `-.->`, data-only `==>`.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for n in &self.nodes {
            let id = mermaid_id(&n.key);
            let label = n.key.replace('"', "'");
            if n.key == "start" || n.key == "end" {
                out.push_str(&format!("  {id}([\"{label}\"])\n"));
            } else {
                out.push_str(&format!(
                    "  {id}[\"{label}<br/><small>{}</small>\"]\n",
                    n.component
                ));
            }
        }
        for e in &self.edges {
            let arrow = match e.kind {
                EdgeKind::Edge => "-->",
                EdgeKind::Branch => "-.->",
                EdgeKind::Data => "==>",
            };
            out.push_str(&format!(
                "  {} {arrow} {}\n",
                mermaid_id(&e.from),
                mermaid_id(&e.to)
            ));
        }
        out
    }
}

impl<I: GraphValue, O: GraphValue> Compiled<I, O> {
    /// This graph's nodes and edges.
    pub fn topology(&self) -> Topology {
        let plan = self.plan();
        let key = |i: usize| match i {
            0 => "start".to_string(),
            1 => "end".to_string(),
            _ => plan.nodes[i].key.clone(),
        };
        let nodes = (0..plan.nodes.len())
            .map(|i| TopologyNode {
                key: key(i),
                component: plan.nodes[i].kind.as_str().to_string(),
                typ: plan.nodes[i].typ.to_string(),
            })
            .collect();
        let mut edges = Vec::new();
        for (from, succ) in plan.succ.iter().enumerate() {
            for &to in succ {
                edges.push(TopologyEdge {
                    from: key(from),
                    to: key(to),
                    kind: EdgeKind::Edge,
                });
            }
            for b in &plan.branches[from] {
                for &to in &b.targets {
                    edges.push(TopologyEdge {
                        from: key(from),
                        to: key(to),
                        kind: EdgeKind::Branch,
                    });
                }
            }
            for &to in &plan.data_succ[from] {
                edges.push(TopologyEdge {
                    from: key(from),
                    to: key(to),
                    kind: EdgeKind::Data,
                });
            }
        }
        Topology {
            name: plan.name.to_string(),
            nodes,
            edges,
        }
    }
}
