//! One client, so one connection pool, per tokio runtime.
//!
//! A pooled connection is driven by a task on the runtime that opened it. Shared across
//! runtimes, every request from another runtime would hand its reads and writes to that
//! task across threads, and would fail once that runtime ended (a test's runtime, say).
//! A server that runs a single-threaded runtime per core (eino's) so keeps each upstream
//! exchange on the thread that serves the request.

use std::sync::RwLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connect::Connector;
use crate::config::OpenAiConfig;

/// The client type: requests carry a whole JSON body.
pub(crate) type Client = HyperClient<Connector, Full<Bytes>>;

/// Runtimes whose clients are kept; past this, the oldest entry makes room (its runtime
/// may have ended; if not, that runtime builds a client again on its next request).
const MAX_RUNTIMES: usize = 64;

/// The clients of one model server.
#[derive(Debug)]
pub(crate) struct Clients {
    connector: Connector,
    /// The first client built; used outside any runtime and by the first runtime.
    first: Client,
    by_runtime: RwLock<Vec<(tokio::runtime::Id, Client)>>,
}

fn build(cfg: &OpenAiConfig, connector: Connector) -> Client {
    HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
        // The idle timeout needs a timer to run on.
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

impl Clients {
    pub(crate) fn new(cfg: &OpenAiConfig, connector: Connector) -> Self {
        Self {
            first: build(cfg, connector.clone()),
            connector,
            by_runtime: RwLock::default(),
        }
    }

    /// The client of the current runtime, built at its first request.
    pub(crate) fn current(&self, cfg: &OpenAiConfig) -> Client {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return self.first.clone();
        };
        let id = rt.id();
        let find = |v: &[(tokio::runtime::Id, Client)]| {
            v.iter().find(|(r, _)| *r == id).map(|(_, c)| c.clone())
        };
        if let Some(c) = find(&self.by_runtime.read().unwrap_or_else(|e| e.into_inner())) {
            return c;
        }
        let mut all = self.by_runtime.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = find(&all) {
            return c;
        }
        let client = if all.is_empty() {
            self.first.clone()
        } else {
            build(cfg, self.connector.clone())
        };
        if all.len() >= MAX_RUNTIMES {
            all.remove(0);
        }
        all.push((id, client.clone()));
        client
    }
}
