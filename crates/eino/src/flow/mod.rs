//! Ready-made flows built on [`compose`](crate::compose): the ReAct agent, multi-agent
//! hosts and combinators, and retriever/indexer flows.

pub mod agent;
pub mod react;
pub mod retriever;
