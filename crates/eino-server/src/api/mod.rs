//! The HTTP API: one module per resource, the wire helpers both APIs share (messages,
//! SSE, extractors with JSON rejections) and the middleware. Handlers call the services
//! through [`AppState`](crate::state::AppState); nothing below this floor knows about HTTP
//! handlers.

pub mod applications;
pub(crate) mod edge;
pub(crate) mod extract;
pub mod jobs;
pub mod knowledge;
pub mod mcp;
pub mod middleware;
pub mod openai;
pub mod openapi;
pub mod ops;
pub mod runs;
pub mod sessions;
pub(crate) mod sse;
pub mod ui;
pub mod wire;
