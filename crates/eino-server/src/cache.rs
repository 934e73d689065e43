//! The optional response cache: identical non-streaming chat requests to raw models and
//! identical embedding requests (same tenant, same body bytes) are answered from memory
//! within the TTL. Applications are not cached: their answers depend on knowledge bases
//! and session history that change.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::CacheConfig;

/// Cached response bodies by request hash. Cheap to clone.
#[derive(Clone)]
pub struct ResponseCache {
    inner: moka::sync::Cache<[u8; 32], Arc<Value>>,
}

impl ResponseCache {
    /// `None` when the cache is disabled.
    pub fn from_config(cfg: &CacheConfig) -> Option<Self> {
        cfg.enabled.then(|| Self {
            inner: moka::sync::Cache::builder()
                .max_capacity(cfg.max_entries as u64)
                .time_to_live(Duration::from_secs(cfg.ttl_secs.max(1)))
                .build(),
        })
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
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Value>> {
        let hit = self.inner.get(key);
        let result = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("eino_cache_requests_total", "result" => result).increment(1);
        hit
    }

    /// Remember a body.
    pub fn insert(&self, key: [u8; 32], body: Value) {
        self.inner.insert(key, Arc::new(body));
    }
}
