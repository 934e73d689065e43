//! The shared Redis (or Valkey) that lets several replicas share rate limits and the
//! response cache. One multiplexed connection per replica, reconnected automatically.
//!
//! Redis trouble never fails a request: a rate-limit check that cannot reach Redis lets
//! the request through, a cache read that fails is a miss, and a failed write is dropped.
//! Each is logged and counted in `eino_redis_errors_total{op}`.

use std::time::Duration;

use eino::{Error, ErrorKind, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

/// A connection to the shared Redis, with the key prefix of this deployment. Cheap to
/// clone (one multiplexed connection).
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The rate-limit step, atomically in Redis: GCRA (the token bucket as one timestamp per
/// key, the "theoretical arrival time"), on Redis's clock so replicas need not agree on
/// time. Returns 0 when the request may go, else the milliseconds to wait.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat + interval - interval * burst - now
if wait > 0 then return math.ceil(wait) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0
"#;

fn failed(op: &'static str, e: &redis::RedisError) {
    metrics::counter!("eino_redis_errors_total", "op" => op).increment(1);
    tracing::warn!(op, error = %e, "redis call failed; going on without it");
}

impl Redis {
    /// Connect (at start-up, so a wrong URL or a down server is a clear start error).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::invalid_input(format!("redis.url is not a Redis URL: {e}")).with_source(e)
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Transient, format!("cannot reach redis.url: {e}"))
                    .with_source(e)
            })?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
        })
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}:{rest}", self.prefix)
    }

    /// Take one request for `key` from a bucket refilled every `interval` and holding
    /// `burst` requests; `Err(wait)` when it is empty.
    pub async fn take(&self, key: &str, interval: Duration, burst: u32) -> Result<(), Duration> {
        let mut conn = self.conn.clone();
        let wait: redis::RedisResult<u64> = Script::new(GCRA)
            .key(self.key("limit", key))
            .arg(interval.as_secs_f64() * 1000.0)
            .arg(burst.max(1))
            .invoke_async(&mut conn)
            .await;
        match wait {
            Ok(0) => Ok(()),
            Ok(ms) => Err(Duration::from_millis(ms)),
            Err(e) => {
                failed("limit", &e);
                Ok(())
            }
        }
    }

    /// A cached value.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut conn = self.conn.clone();
        match conn.get::<_, Option<Vec<u8>>>(self.key("cache", key)).await {
            Ok(v) => v,
            Err(e) => {
                failed("cache_get", &e);
                None
            }
        }
    }

    /// Cache a value for `ttl`.
    pub async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let mut conn = self.conn.clone();
        let set: redis::RedisResult<()> = conn
            .set_ex(self.key("cache", key), value, ttl.as_secs().max(1))
            .await;
        if let Err(e) = set {
            failed("cache_set", &e);
        }
    }
}
