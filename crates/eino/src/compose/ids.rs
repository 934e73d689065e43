//! Node handles: [`NodeId`], the typed [`Node`] handle a graph hands out, [`START`] and
//! [`END`], and the [`Source`]/[`Sink`] traits that make an edge between an output and an
//! input of different types fail to compile.

use std::marker::PhantomData;

/// Identifies a node of one graph (or START / END of any graph).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId {
    pub(crate) graph: u32,
    pub(crate) index: u32,
}

pub(crate) const ANY_GRAPH: u32 = 0;

impl NodeId {
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }
}

/// A typed handle to a node with input `I` and output `O`.
pub struct Node<I, O> {
    pub(crate) id: NodeId,
    pub(crate) _p: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for Node<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<I, O> Copy for Node<I, O> {}

impl<I, O> std::fmt::Debug for Node<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.id.index)
    }
}

impl<I, O> Node<I, O> {
    /// The node's id (what a branch condition returns to pick it).
    pub fn id(&self) -> NodeId {
        self.id
    }
}

/// The graph's entry: its output type is the graph's input type.
#[derive(Debug, Clone, Copy)]
pub struct Start;
/// The graph's exit: its input type is the graph's output type.
#[derive(Debug, Clone, Copy)]
pub struct End;

/// The entry of every graph.
pub const START: Start = Start;
/// The exit of every graph.
pub const END: End = End;

pub(crate) const START_ID: NodeId = NodeId {
    graph: ANY_GRAPH,
    index: 0,
};
pub(crate) const END_ID: NodeId = NodeId {
    graph: ANY_GRAPH,
    index: 1,
};

pub(crate) const START_ID_PUB: NodeId = START_ID;
pub(crate) const END_ID_PUB: NodeId = END_ID;

impl End {
    /// END's id, for branch conditions.
    pub fn id(&self) -> NodeId {
        END_ID
    }
}

impl<I, O> From<Node<I, O>> for NodeId {
    fn from(n: Node<I, O>) -> Self {
        n.id
    }
}
impl From<End> for NodeId {
    fn from(_: End) -> Self {
        END_ID
    }
}

/// Something whose output has type `T` in a graph whose input is `GI`.
pub trait Source<T, GI> {
    /// Its id.
    fn source_id(&self) -> NodeId;
}
/// Something whose input has type `T` in a graph whose output is `GO`.
pub trait Sink<T, GO> {
    /// Its id.
    fn sink_id(&self) -> NodeId;
}

impl<X, T, GI> Source<T, GI> for Node<X, T> {
    fn source_id(&self) -> NodeId {
        self.id
    }
}
impl<GI> Source<GI, GI> for Start {
    fn source_id(&self) -> NodeId {
        START_ID
    }
}
impl<T, X, GO> Sink<T, GO> for Node<T, X> {
    fn sink_id(&self) -> NodeId {
        self.id
    }
}
impl<GO> Sink<GO, GO> for End {
    fn sink_id(&self) -> NodeId {
        END_ID
    }
}
