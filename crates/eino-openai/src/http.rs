//! Sending requests: headers, timeouts, error classification and retries.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use eino::{Error, ErrorKind, Result};
use serde_json::Value;

use crate::config::{ApiKeyHeader, OpenAiConfig};

/// A configured HTTP client for one server.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub(crate) cfg: OpenAiConfig,
    clients: Arc<Clients>,
    /// The last endpoint's URL with the query parameters on it, parsed once: parsing it
    /// per request (host, IDNA) was a visible share of a proxied request's CPU. Each
    /// client calls one path.
    endpoint: OnceLock<(&'static str, reqwest::Url)>,
}

fn transport_error(e: reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_builder() {
        ErrorKind::InvalidInput
    } else {
        // Connection refused or reset, DNS, TLS, body read: worth another try.
        ErrorKind::Transient
    };
    Error::new(kind, "request to the model server failed").with_source(e)
}

/// `Retry-After` as seconds or an HTTP date; also `retry-after-ms` (OpenAI).
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = h
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Turn an error response into a typed error carrying the provider's message.
pub(crate) fn status_error(status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> Error {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let err = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .unwrap_or(&Value::Null);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| err.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(500).collect());
    let code = err
        .get("code")
        .and_then(Value::as_str)
        .or_else(|| err.get("type").and_then(Value::as_str))
        .unwrap_or("");
    let context = code == "context_length_exceeded"
        || message.contains("maximum context length")
        || message.contains("context length")
        || message.contains("too many tokens")
        || message.contains("prompt is too long");
    let kind = match status {
        401 | 403 => ErrorKind::Auth,
        400 | 404 | 413 | 422 if context => ErrorKind::ContextLength,
        408 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        400..=499 => ErrorKind::InvalidInput,
        // 5xx and 529 (Anthropic "overloaded").
        _ => ErrorKind::Transient,
    };
    let mut e = Error::new(kind, format!("model server answered {status}: {message}"));
    if let Some(after) = retry_after(headers) {
        e = e.with_retry_after(after);
    }
    e
}

/// Runtimes whose clients are kept; past this, the oldest entry makes room (its runtime
/// may have ended; if not, that runtime builds a client again on its next request).
const MAX_RUNTIMES: usize = 64;

/// One reqwest client, so one connection pool, per tokio runtime.
///
/// A pooled connection is driven by a task on the runtime that opened it. Shared across
/// runtimes, every request from another runtime would hand its reads and writes to that
/// task across threads, and would fail once that runtime ended (a test's runtime, say).
/// A server that runs a single-threaded runtime per core (eino's) so keeps each upstream
/// exchange on the thread that serves the request.
#[derive(Debug)]
struct Clients {
    /// The first client built (which checks the settings at construction); used outside
    /// any runtime.
    first: reqwest::Client,
    by_runtime: RwLock<Vec<(tokio::runtime::Id, reqwest::Client)>>,
}

fn build_client(cfg: &OpenAiConfig) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .read_timeout(cfg.stream_idle_timeout)
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
        .build()
        .map_err(|e| Error::invalid_input("cannot build the HTTP client").with_source(e))
}

impl Clients {
    /// The client of the current runtime, built at its first request.
    fn current(&self, cfg: &OpenAiConfig) -> Result<reqwest::Client> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Ok(self.first.clone());
        };
        let id = rt.id();
        let find = |v: &[(tokio::runtime::Id, reqwest::Client)]| {
            v.iter().find(|(r, _)| *r == id).map(|(_, c)| c.clone())
        };
        if let Some(c) = find(&self.by_runtime.read().unwrap_or_else(|e| e.into_inner())) {
            return Ok(c);
        }
        let mut all = self.by_runtime.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = find(&all) {
            return Ok(c);
        }
        let client = if all.is_empty() {
            self.first.clone()
        } else {
            build_client(cfg)?
        };
        if all.len() >= MAX_RUNTIMES {
            all.remove(0);
        }
        all.push((id, client.clone()));
        Ok(client)
    }
}

impl Http {
    pub(crate) fn new(cfg: OpenAiConfig) -> Result<Self> {
        let clients = Arc::new(Clients {
            first: build_client(&cfg)?,
            by_runtime: RwLock::default(),
        });
        Ok(Self {
            cfg,
            clients,
            endpoint: OnceLock::new(),
        })
    }

    /// `base_url/path?query`, parsed.
    fn parse_url(&self, path: &str) -> Result<reqwest::Url> {
        let mut url =
            reqwest::Url::parse(&format!("{}/{path}", self.cfg.base_url)).map_err(|e| {
                Error::invalid_input("the model server's URL is invalid").with_source(e)
            })?;
        if !self.cfg.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.cfg.query);
        }
        Ok(url)
    }

    /// The URL of `path`, from the memo when it is the memoized path.
    fn url(&self, path: &'static str) -> Result<reqwest::Url> {
        if let Some((p, url)) = self.endpoint.get() {
            if *p == path {
                return Ok(url.clone());
            }
        }
        let url = self.parse_url(path)?;
        let _ = self.endpoint.set((path, url.clone()));
        Ok(url)
    }

    fn request(
        &self,
        client: &reqwest::Client,
        url: reqwest::Url,
        body: &(impl serde::Serialize + ?Sized),
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let mut r = client.post(url).json(body);
        if let Some(key) = &self.cfg.api_key {
            r = match &self.cfg.api_key_header {
                ApiKeyHeader::Bearer => r.bearer_auth(key),
                ApiKeyHeader::Named(h) => r.header(h.as_str(), key.as_str()),
            };
        }
        for (k, v) in &self.cfg.headers {
            r = r.header(k.as_str(), v.as_str());
        }
        if stream {
            r.header(reqwest::header::ACCEPT, "text/event-stream")
        } else {
            r.timeout(self.cfg.timeout)
        }
    }

    /// The delay before retry number `attempt` (0-based): exponential with full jitter
    /// between half and all of it, at least the server's `Retry-After`.
    fn backoff(&self, attempt: u32, e: &Error) -> Duration {
        let base = self
            .cfg
            .retry_base_delay
            .saturating_mul(1 << attempt.min(16));
        let jittered = base.mul_f64(0.5 + fastrand::f64() * 0.5);
        e.retry_after().map_or(jittered, |r| r.max(jittered))
    }

    /// POST with retries for retryable failures; returns a successful response (its body
    /// not yet read, so streams start at once).
    pub(crate) async fn post(
        &self,
        path: &'static str,
        body: &(impl serde::Serialize + ?Sized),
        stream: bool,
    ) -> Result<reqwest::Response> {
        let url = self.url(path)?;
        let client = self.clients.current(&self.cfg)?;
        let mut attempt = 0;
        loop {
            let e = match self
                .request(&client, url.clone(), body, stream)
                .send()
                .await
            {
                Err(e) => transport_error(e),
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let text = resp.text().await.unwrap_or_default();
                    status_error(status, &headers, &text)
                }
            };
            if !e.is_retryable() || attempt >= self.cfg.max_retries {
                return Err(e);
            }
            let delay = self.backoff(attempt, &e);
            tracing::warn!(attempt, ?delay, error = %e, "retrying model request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// POST and parse a JSON body.
    pub(crate) async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &'static str,
        body: &(impl serde::Serialize + ?Sized),
    ) -> Result<T> {
        let resp = self.post(path, body, false).await?;
        let bytes = resp.bytes().await.map_err(transport_error)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            let head: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            Error::new(
                ErrorKind::Internal,
                format!("model server sent malformed JSON: {head}"),
            )
            .with_source(e)
        })
    }
}
