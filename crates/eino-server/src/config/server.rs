//! `server:`: where the service listens and its HTTP limits.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{positive, ConfigError};

/// `server:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listening address.
    pub addr: String,
    /// Where the database, the index and uploads live.
    pub data_dir: PathBuf,
    /// Largest JSON request body.
    pub max_body_bytes: usize,
    /// Largest upload (multipart) body.
    pub max_upload_bytes: usize,
    /// Deadline of a non-streaming request.
    pub request_timeout_secs: u64,
    /// Origins allowed by CORS (`*` for any); empty disables CORS.
    pub cors_origins: Vec<String>,
    /// How long shutdown waits for open streams.
    pub shutdown_grace_secs: u64,
    /// Serve the web UI at `/ui/`.
    pub web_ui: bool,
    /// Connections served at once; further ones wait in the listen backlog until one
    /// closes (the file-descriptor limit is never reached by clients alone).
    pub max_connections: usize,
    /// A connection must send a complete request head within this time after it opens or
    /// after its previous answer; otherwise it is closed. Covers slow-header clients and
    /// idle keep-alive connections alike.
    pub header_read_timeout_secs: u64,
    /// Connection threads, each with its own single-threaded runtime: a connection and
    /// everything its requests do (upstream calls included) stay on one thread, so a
    /// request is not handed between threads. 0: one per core.
    pub workers: usize,
    /// Serve connections as tasks of one shared work-stealing runtime instead of on
    /// connection threads: better when handlers compute for long on their async thread
    /// (custom components that do not move such work to blocking threads).
    pub work_stealing: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("eino-data"),
            max_body_bytes: 4 << 20,
            max_upload_bytes: 64 << 20,
            request_timeout_secs: 300,
            cors_origins: Vec::new(),
            shutdown_grace_secs: 30,
            web_ui: true,
            max_connections: 4096,
            header_read_timeout_secs: 10,
            workers: 0,
            work_stealing: false,
        }
    }
}

impl ServerConfig {
    /// How many connection threads `workers` asks for.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Check the section; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.addr
            .parse::<std::net::SocketAddr>()
            .map_err(|e| ConfigError::new("server.addr", format!("{:?}: {e}", self.addr)))?;
        positive("server.max_body_bytes", self.max_body_bytes as u64)?;
        positive("server.max_connections", self.max_connections as u64)?;
        if self.workers > 1024 {
            return Err(ConfigError::new(
                "server.workers",
                format!("{} threads; at most 1024 (0: one per core)", self.workers),
            ));
        }
        positive(
            "server.header_read_timeout_secs",
            self.header_read_timeout_secs,
        )
    }
}
