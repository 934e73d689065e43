//! `limits:`: rate limits, and what one request, upload or tenant may take.

use serde::{Deserialize, Serialize};

use super::{positive, ConfigError};

/// `limits:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per minute per key (per tenant without auth); 0 disables.
    pub requests_per_minute: u32,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
    /// Runs waiting for an approval longer than this are dropped with their checkpoints
    /// (default a week); 0 keeps them forever.
    pub interrupted_run_ttl_secs: u64,
    /// Failed authentications allowed per client address per minute (then 429 until the
    /// bucket refills); 0 disables.
    pub auth_failures_per_minute: u32,
    /// Messages in one chat request at most (413 beyond).
    pub max_messages: usize,
    /// Characters of text in one chat request at most: message contents and tool-call
    /// arguments together (413 beyond).
    pub max_input_chars: usize,
    /// Tool definitions in one chat request at most (413 beyond).
    pub max_tools: usize,
    /// Ingestion jobs parsing and embedding at once per replica; further jobs wait
    /// (`running`, no progress) for a slot, so memory stays bounded under many uploads.
    pub ingest_jobs_at_once: usize,
    /// Bytes a document may inflate to while being parsed (PDF streams, the DOCX body);
    /// a larger one fails as that file's outcome.
    pub max_document_inflated_bytes: u64,
    /// Time a document may take to parse; a slower one fails as that file's outcome.
    pub max_parse_secs: u64,
    /// Chunks one document may be split into; a document with more fails as that file's
    /// outcome (nothing of it is indexed).
    pub max_chunks_per_document: usize,
    /// Chunks a tenant's knowledge bases may hold together; 0: no limit.
    pub max_chunks_per_tenant: u64,
    /// Bytes of documents a tenant's knowledge bases may hold together; 0: no limit.
    pub max_bytes_per_tenant: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 0,
            burst: 10,
            interrupted_run_ttl_secs: 7 * 24 * 3600,
            auth_failures_per_minute: 30,
            max_messages: 1000,
            max_input_chars: 1_000_000,
            max_tools: 128,
            ingest_jobs_at_once: 2,
            max_document_inflated_bytes: 64 << 20,
            max_parse_secs: 60,
            max_chunks_per_document: 5000,
            max_chunks_per_tenant: 1_000_000,
            max_bytes_per_tenant: 10 << 30,
        }
    }
}

impl LimitsConfig {
    /// Check the section; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("limits.max_messages", self.max_messages as u64)?;
        positive("limits.max_input_chars", self.max_input_chars as u64)?;
        positive(
            "limits.ingest_jobs_at_once",
            self.ingest_jobs_at_once as u64,
        )?;
        positive(
            "limits.max_document_inflated_bytes",
            self.max_document_inflated_bytes,
        )?;
        positive("limits.max_parse_secs", self.max_parse_secs)?;
        positive(
            "limits.max_chunks_per_document",
            self.max_chunks_per_document as u64,
        )
    }
}
