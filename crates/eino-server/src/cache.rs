//! The optional response cache: identical non-streaming chat requests to raw models and
//! identical embedding requests (same tenant, same body bytes) are answered from the
//! cache within the TTL — in process, or in Redis (shared by replicas) when configured.
//! Applications are not cached: their answers depend on knowledge bases and session
//! history that change.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::CacheConfig;
use crate::redis::Redis;

#[derive(Clone)]
enum Backend {
    Local(moka::sync::Cache<[u8; 32], Arc<Value>>),
    Shared(Redis),
}

/// Cached response bodies by request hash. Cheap to clone.
#[derive(Clone)]
pub struct ResponseCache {
    backend: Backend,
    ttl: Duration,
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

impl ResponseCache {
    /// `None` when the cache is disabled; in `redis` when given.
    pub fn from_config(cfg: &CacheConfig, redis: Option<&Redis>) -> Option<Self> {
        let ttl = Duration::from_secs(cfg.ttl_secs.max(1));
        let backend = match redis {
            Some(r) => Backend::Shared(r.clone()),
            None => Backend::Local(
                moka::sync::Cache::builder()
                    .max_capacity(cfg.max_entries as u64)
                    .time_to_live(ttl)
                    .build(),
            ),
        };
        cfg.enabled.then_some(Self { backend, ttl })
    }

    /// The key of a request: endpoint, tenant and the body's bytes.
    pub fn key(endpoint: &str, tenant: &str, body: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [endpoint.as_bytes(), tenant.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(body);
        h.finalize().into()
    }

    /// A cached body, counting hits and misses in `eino_cache_requests_total{result}`.
    pub async fn get(&self, key: &[u8; 32]) -> Option<Arc<Value>> {
        let hit = match &self.backend {
            Backend::Local(c) => c.get(key),
            Backend::Shared(r) => r
                .get(&hex(key))
                .await
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .map(Arc::new),
        };
        let result = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("eino_cache_requests_total", "result" => result).increment(1);
        hit
    }

    /// Remember a body.
    pub async fn insert(&self, key: [u8; 32], body: Value) {
        match &self.backend {
            Backend::Local(c) => c.insert(key, Arc::new(body)),
            Backend::Shared(r) => match serde_json::to_vec(&body) {
                Ok(bytes) => r.set(&hex(&key), bytes, self.ttl).await,
                Err(e) => tracing::warn!(error = %e, "cannot cache a response"),
            },
        }
    }
}
