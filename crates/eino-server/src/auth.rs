//! Authentication and per-caller rate limits.
//!
//! API keys are configured as their SHA-256 (never in clear) and map to a tenant; JWTs are
//! HS256 only (the algorithm is pinned, so a token cannot pick `none` or RS/HS
//! confusion), with `exp` required and checked. Without any auth configured every caller
//! is tenant `default` — which is why the server then refuses to listen beyond loopback.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};

use crate::config::{AuthConfig, LimitsConfig};
use crate::error::{ApiError, ConfigError};

/// Who is calling, resolved by the auth middleware and put in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Whose data the request sees.
    pub tenant: String,
    /// The key or subject, for logs and rate limits (never the secret).
    pub principal: String,
}

/// Hex SHA-256 of an API key, as configured in `auth.api_keys[].sha256`.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Jwt {
    key: DecodingKey,
    validation: Validation,
    tenant_claim: String,
    tenant_from_sub: bool,
}

/// The configured credentials.
#[derive(Clone)]
pub struct Auth {
    keys: Arc<HashMap<String, (String, String)>>,
    jwt: Option<Arc<Jwt>>,
}

impl Auth {
    /// From the `auth:` section; the JWT secret is read from its environment variable.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, ConfigError> {
        let keys = cfg
            .api_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let name = k.name.clone().unwrap_or_else(|| format!("key-{i}"));
                (k.sha256.to_ascii_lowercase(), (k.tenant.clone(), name))
            })
            .collect();
        let jwt = match &cfg.jwt {
            None => None,
            Some(j) => {
                let secret = std::env::var(&j.secret_env)
                    .ok()
                    .filter(|s| s.len() >= 32)
                    .ok_or_else(|| {
                        ConfigError::new(
                            "auth.jwt.secret_env",
                            format!(
                                "environment variable {} must hold a secret of at least 32 bytes",
                                j.secret_env
                            ),
                        )
                    })?;
                let mut v = Validation::new(Algorithm::HS256);
                v.algorithms = vec![Algorithm::HS256];
                v.validate_exp = true;
                // `nbf` is honoured with the same leeway as `exp`.
                v.validate_nbf = true;
                v.leeway = 30;
                v.set_required_spec_claims(&["exp"]);
                if let Some(iss) = &j.issuer {
                    v.set_issuer(&[iss]);
                }
                match &j.audience {
                    Some(aud) => v.set_audience(&[aud]),
                    None => v.validate_aud = false,
                }
                let key = DecodingKey::from_secret(secret.as_bytes()).map_err(|e| {
                    ConfigError::new("auth.jwt.secret_env", format!("unusable secret: {e}"))
                })?;
                Some(Arc::new(Jwt {
                    key,
                    validation: v,
                    tenant_claim: j.tenant_claim.clone().unwrap_or_else(|| "tenant".into()),
                    tenant_from_sub: j.tenant_from_sub,
                }))
            }
        };
        Ok(Self {
            keys: Arc::new(keys),
            jwt,
        })
    }

    /// Whether any credential is configured.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty() || self.jwt.is_some()
    }

    /// Resolve a bearer token.
    pub fn check(&self, token: Option<&str>) -> Result<Caller, ApiError> {
        if !self.enabled() {
            return Ok(Caller {
                tenant: "default".into(),
                principal: "anonymous".into(),
            });
        }
        let token = token.ok_or_else(|| {
            ApiError::unauthorized(
                "missing credentials: send Authorization: Bearer <api key or JWT>",
            )
        })?;
        if let Some((tenant, name)) = self.keys.get(&hash_key(token)) {
            return Ok(Caller {
                tenant: tenant.clone(),
                principal: name.clone(),
            });
        }
        if let Some(jwt) = &self.jwt {
            if token.matches('.').count() == 2 {
                let data =
                    jsonwebtoken::decode::<serde_json::Value>(token, &jwt.key, &jwt.validation)
                        .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
                let claims = data.claims;
                let sub = claims.get("sub").and_then(|v| v.as_str()).unwrap_or("");
                let tenant = match claims.get(&jwt.tenant_claim).and_then(|v| v.as_str()) {
                    Some(t) => t,
                    None if jwt.tenant_from_sub => sub,
                    None => {
                        return Err(ApiError::unauthorized(format!(
                            "the token has no {:?} claim naming its tenant",
                            jwt.tenant_claim
                        )))
                    }
                };
                if !crate::config::valid_name(tenant) {
                    return Err(ApiError::unauthorized("the token names no valid tenant"));
                }
                return Ok(Caller {
                    tenant: tenant.to_string(),
                    principal: format!("jwt:{sub}"),
                });
            }
        }
        Err(ApiError::unauthorized("invalid API key"))
    }
}

/// Per-principal token buckets: in this process, or in Redis so replicas share them.
#[derive(Clone)]
pub enum Limiter {
    /// In-process (governor's GCRA).
    Local(Arc<DefaultKeyedRateLimiter<String>>),
    /// In Redis, shared by every replica using it.
    Shared {
        /// The connection.
        redis: crate::redis::Redis,
        /// Time to refill one request.
        interval: Duration,
        /// Requests allowed at once.
        burst: u32,
    },
}

impl Limiter {
    /// `None` when `requests_per_minute` is 0; shared through `redis` when given.
    pub fn from_config(cfg: &LimitsConfig, redis: Option<&crate::redis::Redis>) -> Option<Self> {
        let rpm = NonZeroU32::new(cfg.requests_per_minute)?;
        let burst = NonZeroU32::new(cfg.burst).unwrap_or(NonZeroU32::MIN);
        Some(match redis {
            Some(r) => Self::Shared {
                redis: r.clone(),
                interval: Duration::from_secs(60) / rpm.get(),
                burst: burst.get(),
            },
            None => Self::Local(Arc::new(RateLimiter::keyed(
                Quota::per_minute(rpm).allow_burst(burst),
            ))),
        })
    }

    /// Take one token for `key`, or say how long to wait.
    pub async fn check(&self, key: &str) -> Result<(), Duration> {
        match self {
            Self::Local(l) => l
                .check_key(&key.to_string())
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
            Self::Shared {
                redis,
                interval,
                burst,
            } => redis.take(key, *interval, *burst).await,
        }
    }
}

/// Failed authentications per client address: past the allowance an address is refused
/// (429) without its credentials being checked, so keys cannot be guessed at speed.
#[derive(Clone)]
pub struct FailureLimiter {
    buckets: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses refused until the instant given.
    blocked: moka::sync::Cache<IpAddr, Instant>,
}

impl FailureLimiter {
    /// `None` when `limits.auth_failures_per_minute` is 0.
    pub fn from_config(cfg: &LimitsConfig) -> Option<Self> {
        let n = NonZeroU32::new(cfg.auth_failures_per_minute)?;
        Some(Self {
            buckets: Arc::new(RateLimiter::keyed(Quota::per_minute(n).allow_burst(n))),
            blocked: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        })
    }

    /// How long `ip` must still wait, if it is refused now.
    pub fn refused(&self, ip: IpAddr) -> Option<Duration> {
        let until = self.blocked.get(&ip)?;
        until.checked_duration_since(Instant::now())
    }

    /// Count one failure of `ip`; the wait when this one used up its allowance.
    pub fn fail(&self, ip: IpAddr) -> Option<Duration> {
        metrics::counter!("eino_auth_failures_total").increment(1);
        if self.buckets.len() > 100_000 {
            self.buckets.retain_recent();
        }
        let wait = self
            .buckets
            .check_key(&ip)
            .err()?
            .wait_time_from(DefaultClock::default().now());
        self.blocked.insert(ip, Instant::now() + wait);
        Some(wait)
    }
}
