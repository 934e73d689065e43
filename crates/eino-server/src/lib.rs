//! The eino service: an OpenAI-compatible API (`/v1/chat/completions`, `/v1/embeddings`,
//! `/v1/models`) and a native API (`/api/v1/...`: chat with sessions, knowledge bases with
//! ingestion jobs, run traces, application graphs) over eino applications, with SQLite
//! persistence, API-key/JWT auth per tenant, rate limits, circuit breakers with fallback
//! models, Prometheus metrics, request ids and W3C trace context.
//!
//! With no configuration it runs the embedded defaults: the local SmolLM2 chat model and
//! MiniLM embedder (fetched into the model cache on first use), SQLite and the in-process
//! index under `./eino-data`, listening on 127.0.0.1:8080. The `eino` binary (crate
//! `eino-cli`) wraps it; embedding it yourself:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use eino_server::{config::Config, registry::Registry, state::AppState};
//! let config = Config::load(None, std::env::vars())?;
//! let registry = Registry::load(&config).await?;
//! let state = AppState::build(config, registry).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! eino_server::http::serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

// Floors, each importing only the ones below it (scripts/module_cycles.py checks):
// 0. `config` (plain data), `error`;
// 1. services, no handlers: `store`, `redis`, `metrics`, `resilience`, `registry`,
//    `cache`, `telemetry`, `knowledge`, `tools`, `agents`, `app`, `trace`, `auth`, `runs`,
//    `interrupts`, `dispatch`;
// 2. `state` (wires the services);
// 3. `api` (one file per resource, the wire helpers and the middleware);
// 4. `router` (the one routing table);
// 5. `http` (the accept loop).
pub mod agents;
pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod http;
pub mod interrupts;
pub mod knowledge;
pub mod metrics;
pub mod redis;
pub mod registry;
pub mod resilience;
pub mod router;
pub mod runs;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod trace;
