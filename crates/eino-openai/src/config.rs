//! Client configuration.

use std::time::Duration;

/// How the API key is sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ApiKeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI and most compatible servers).
    #[default]
    Bearer,
    /// A named header, e.g. `api-key` for Azure OpenAI.
    Named(String),
}

/// Structured output: ask the model for JSON, optionally matching a JSON Schema. Set it in
/// [`OpenAiConfig::response_format`], or per call in `ChatOptions::extensions`.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Any JSON object (`{"type": "json_object"}`).
    JsonObject,
    /// JSON matching `schema` (`{"type": "json_schema", ...}`), strict by default.
    JsonSchema {
        /// Schema name.
        name: String,
        /// The JSON Schema.
        schema: serde_json::Value,
        /// Ask the server to enforce the schema exactly.
        strict: bool,
    },
}

/// Where and how to reach the server, and the request defaults.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// API base, up to and including `/v1` (default `https://api.openai.com/v1`). For Azure:
    /// `https://<resource>.openai.azure.com/openai/deployments/<deployment>` with
    /// [`query`](Self::query) `api-version` and [`ApiKeyHeader::Named`]`("api-key")`.
    pub base_url: String,
    /// API key (none for local servers).
    pub api_key: Option<String>,
    /// How the key is sent.
    pub api_key_header: ApiKeyHeader,
    /// Extra headers on every request.
    pub headers: Vec<(String, String)>,
    /// Extra query parameters on every request (e.g. Azure's `api-version`).
    pub query: Vec<(String, String)>,
    /// Model name (overridden per call by `ChatOptions::model`).
    pub model: String,
    /// Defaults for calls that do not set them.
    pub temperature: Option<f32>,
    /// Nucleus sampling default.
    pub top_p: Option<f32>,
    /// Output token limit default.
    pub max_tokens: Option<u32>,
    /// Stop sequences default.
    pub stop: Option<Vec<String>>,
    /// Sampling seed default.
    pub seed: Option<u64>,
    /// Structured output default.
    pub response_format: Option<ResponseFormat>,
    /// TCP/TLS connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Whole-request limit for non-streaming calls (default 120 s).
    pub timeout: Duration,
    /// Longest silence allowed between two stream events (default 60 s).
    pub stream_idle_timeout: Duration,
    /// Retries after the first attempt for transient failures (default 2).
    pub max_retries: u32,
    /// First backoff delay; doubles each retry, with jitter (default 500 ms).
    pub retry_base_delay: Duration,
    /// Texts per embeddings request (default 256).
    pub embed_batch_size: usize,
    /// Idle pooled connections are closed after this long (default 30 s).
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept per host at most (default 64): a burst of streams
    /// does not leave a thousand idle sockets behind.
    pub pool_max_idle_per_host: usize,
    /// Largest whole (non-streamed) answer read, in bytes (default 64 MiB): a misbehaving
    /// server cannot make eino hold an unbounded body. Embeddings of a full batch are the
    /// largest answers (256 × 3 072 floats is about 15 MB of JSON).
    pub max_response_bytes: usize,
}

impl OpenAiConfig {
    /// Defaults for OpenAI itself and the given model.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            api_key_header: ApiKeyHeader::Bearer,
            headers: Vec::new(),
            query: Vec::new(),
            model: model.into(),
            temperature: None,
            top_p: None,
            max_tokens: None,
            stop: None,
            seed: None,
            response_format: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
            stream_idle_timeout: Duration::from_secs(60),
            max_retries: 2,
            retry_base_delay: Duration::from_millis(500),
            embed_batch_size: 256,
            pool_idle_timeout: Duration::from_secs(30),
            pool_max_idle_per_host: 64,
            max_response_bytes: 64 << 20,
        }
    }

    /// Set the base URL (a trailing `/` is ignored).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into().trim_end_matches('/').to_string();
        self
    }

    /// Set (or clear) the API key.
    pub fn with_api_key(mut self, key: Option<String>) -> Self {
        self.api_key = key.filter(|k| !k.is_empty());
        self
    }

    /// Add a header to every request.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the retry count.
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Set the first backoff delay.
    pub fn with_retry_base_delay(mut self, d: Duration) -> Self {
        self.retry_base_delay = d;
        self
    }

    /// Set the structured-output default.
    pub fn with_response_format(mut self, f: ResponseFormat) -> Self {
        self.response_format = Some(f);
        self
    }

    /// Azure OpenAI: deployment URL, `api-version` and the `api-key` header.
    pub fn azure(
        resource_url: &str,
        deployment: &str,
        api_version: &str,
        api_key: Option<String>,
    ) -> Self {
        let mut c = Self::new(deployment).with_base_url(format!(
            "{}/openai/deployments/{deployment}",
            resource_url.trim_end_matches('/')
        ));
        c.api_key = api_key;
        c.api_key_header = ApiKeyHeader::Named("api-key".into());
        c.query.push(("api-version".into(), api_version.into()));
        c
    }
}
