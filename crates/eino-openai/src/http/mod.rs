//! Sending requests: one hyper client (one connection pool) per tokio runtime, the
//! configured headers, timeouts, error classification and retries.
//!
//! The client is hyper-util's, beneath the layers of a general-purpose client (redirect
//! policy, per-request URL and header conversions): on a proxied request those cost about
//! a third of a relay's CPU (docs/benchmarks.md, issue 22).

mod body;
mod clients;
mod connect;
mod errors;

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use eino::{Error, ErrorKind, Result};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, Uri};
use hyper_util::client::proxy::matcher::Matcher;
use tokio::time::{timeout_at, Instant};

use self::body::read_to_bytes;
pub(crate) use self::body::BodyStream;
use self::clients::Clients;
use self::connect::Connecting;
pub(crate) use self::errors::status_error;
use self::errors::{timeout_error, transport_error};
use crate::config::{ApiKeyHeader, OpenAiConfig};

/// A configured HTTP client for one server.
#[derive(Debug)]
pub(crate) struct Http {
    pub(crate) cfg: OpenAiConfig,
    clients: Clients,
    /// Every request's headers (content type, key, configured headers, proxy
    /// credentials), checked and built once.
    headers: HeaderMap,
    /// The same with `Accept: text/event-stream`.
    stream_headers: HeaderMap,
    /// The last endpoint's URI with the query parameters on it, built once: each client
    /// calls one path.
    endpoint: OnceLock<(&'static str, Uri)>,
}

fn invalid_header(what: &str, name: &str) -> Error {
    Error::invalid_input(format!("invalid HTTP header {what}: {name:?}"))
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue> {
    HeaderValue::try_from(value).map_err(|e| invalid_header("value", name).with_source(e))
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let checked =
        HeaderName::try_from(name).map_err(|e| invalid_header("name", name).with_source(e))?;
    Ok((checked, header_value(name, value)?))
}

fn headers(cfg: &OpenAiConfig, proxy_authorization: Option<HeaderValue>) -> Result<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(key) = &cfg.api_key {
        let (name, mut value) = match &cfg.api_key_header {
            ApiKeyHeader::Bearer => (
                AUTHORIZATION,
                header_value(AUTHORIZATION.as_str(), &format!("Bearer {key}"))?,
            ),
            ApiKeyHeader::Named(name) => header(name, key)?,
        };
        value.set_sensitive(true);
        h.insert(name, value);
    }
    for (k, v) in &cfg.headers {
        let (name, value) = header(k, v)?;
        h.append(name, value);
    }
    if let Some(auth) = proxy_authorization {
        h.insert(hyper::header::PROXY_AUTHORIZATION, auth);
    }
    Ok(h)
}

/// The server's base URL, checked: `http://` or `https://` with a host.
fn server_uri(cfg: &OpenAiConfig) -> Result<Uri> {
    let uri: Uri = cfg.base_url.parse().map_err(|e| {
        Error::invalid_input(format!(
            "the model server's URL is invalid: {}",
            cfg.base_url
        ))
        .with_source(e)
    })?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(Error::invalid_input(format!(
            "the model server's URL must be http:// or https:// with a host: {}",
            cfg.base_url
        ))),
    }
}

/// Error bodies are read up to this much (the provider's message is at the start).
const ERROR_BODY_MAX: usize = 64 * 1024;

impl Http {
    /// A client for `cfg`'s server, with the proxy rules of the environment.
    pub(crate) fn new(cfg: OpenAiConfig) -> Result<Self> {
        Self::with_proxies(cfg, &Matcher::from_env())
    }

    /// A client for `cfg`'s server, with these proxy rules.
    pub(crate) fn with_proxies(cfg: OpenAiConfig, proxies: &Matcher) -> Result<Self> {
        let server = server_uri(&cfg)?;
        let Connecting {
            connector,
            proxy_authorization,
        } = Connecting::new(&cfg, &server, proxies)?;
        let headers = headers(&cfg, proxy_authorization)?;
        let mut stream_headers = headers.clone();
        stream_headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        Ok(Self {
            clients: Clients::new(&cfg, connector),
            cfg,
            headers,
            stream_headers,
            endpoint: OnceLock::new(),
        })
    }

    /// `base_url/path?query`.
    fn parse_url(&self, path: &str) -> Result<Uri> {
        let invalid = |e: &dyn std::fmt::Display| {
            Error::invalid_input(format!("the model server's URL is invalid: {e}"))
        };
        let mut url =
            url::Url::parse(&format!("{}/{path}", self.cfg.base_url)).map_err(|e| invalid(&e))?;
        if !self.cfg.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.cfg.query);
        }
        url.as_str().parse().map_err(|e| invalid(&e))
    }

    /// The URI of `path`, from the memo when it is the memoized path.
    fn url(&self, path: &'static str) -> Result<Uri> {
        if let Some((p, url)) = self.endpoint.get() {
            if *p == path {
                return Ok(url.clone());
            }
        }
        let url = self.parse_url(path)?;
        let _ = self.endpoint.set((path, url.clone()));
        Ok(url)
    }

    fn request(&self, uri: Uri, body: Bytes, stream: bool) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        *req.headers_mut() = if stream {
            self.stream_headers.clone()
        } else {
            self.headers.clone()
        };
        req
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

    /// POST with retries for retryable failures. Returns a successful response, its body
    /// not yet read (so streams start at once), and the attempt's deadline: a call's
    /// `timeout` for whole answers, `stream_idle_timeout` for the headers of a stream.
    async fn send(
        &self,
        path: &'static str,
        body: &(impl serde::Serialize + ?Sized),
        stream: bool,
    ) -> Result<(Response<Incoming>, Instant)> {
        let uri = self.url(path)?;
        let body = Bytes::from(serde_json::to_vec(body).map_err(|e| {
            Error::invalid_input("the request cannot be written as JSON").with_source(e)
        })?);
        let client = self.clients.current(&self.cfg);
        let limit = if stream {
            self.cfg.stream_idle_timeout
        } else {
            self.cfg.timeout
        };
        let mut attempt = 0;
        loop {
            let deadline = Instant::now() + limit;
            let sent = client.request(self.request(uri.clone(), body.clone(), stream));
            let e = match timeout_at(deadline, sent).await {
                Err(_) => timeout_error("did not answer", limit),
                Ok(Err(e)) => transport_error(e),
                Ok(Ok(resp)) if resp.status().is_success() => return Ok((resp, deadline)),
                Ok(Ok(resp)) => {
                    let (parts, body) = resp.into_parts();
                    let text = match timeout_at(deadline, read_to_bytes(body, ERROR_BODY_MAX)).await
                    {
                        Ok(Ok(b)) => String::from_utf8_lossy(&b).into_owned(),
                        _ => String::new(),
                    };
                    status_error(parts.status.as_u16(), &parts.headers, &text)
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

    /// POST and read the answer as a stream of body chunks, each within
    /// `stream_idle_timeout` of the one before.
    pub(crate) async fn post_stream(
        &self,
        path: &'static str,
        body: &(impl serde::Serialize + ?Sized),
    ) -> Result<BodyStream> {
        let (resp, _) = self.send(path, body, true).await?;
        Ok(BodyStream::new(
            resp.into_body(),
            self.cfg.stream_idle_timeout,
        ))
    }

    /// POST and parse a JSON body, all within the call's `timeout`.
    pub(crate) async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &'static str,
        body: &(impl serde::Serialize + ?Sized),
    ) -> Result<T> {
        let (resp, deadline) = self.send(path, body, false).await?;
        let read = read_to_bytes(resp.into_body(), self.cfg.max_response_bytes);
        let bytes = timeout_at(deadline, read)
            .await
            .map_err(|_| timeout_error("did not finish its answer", self.cfg.timeout))??;
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

#[cfg(test)]
mod tests;
