//! `store:`: SQLite under the data dir, or PostgreSQL.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `store:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://…` for PostgreSQL; empty for SQLite at `<data_dir>/eino.db`.
    pub database_url: Option<String>,
    /// PostgreSQL: pooled connections per replica.
    pub max_connections: usize,
    /// PostgreSQL: keep the knowledge bases' chunks in the database (pgvector for the
    /// vectors, full-text search for keywords), so every replica searches what any of them
    /// ingested. `false` keeps them in the in-process indexes under the data dir (one
    /// replica only). Without a database URL the chunks are always in-process.
    pub chunks_in_database: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            max_connections: 16,
            chunks_in_database: true,
        }
    }
}

impl StoreConfig {
    /// Check the section; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url {
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                return Err(ConfigError::new(
                    "store.database_url",
                    "must be a postgres:// URL (leave it out for SQLite)",
                ));
            }
        }
        Ok(())
    }
}
