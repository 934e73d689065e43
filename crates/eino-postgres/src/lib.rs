//! PostgreSQL backends for eino, on one connection pool:
//!
//! - [`Postgres`]: the pool (`tokio-postgres` with `deadpool`), errors classified as
//!   retryable or not, and DDL and migrations under one advisory lock, so replicas can
//!   start together;
//! - [`PostgresCheckpointStore`]: a [`CheckpointStore`](eino::compose::CheckpointStore),
//!   so a run interrupted on one replica resumes on any other;
//! - [`PostgresChunks`]: a [`ChunkStore`](eino_rag::ChunkStore) with pgvector (HNSW per
//!   vector size, iterative scans) and full-text search, so every replica searches what
//!   any of them ingested.
//!
//! ```no_run
//! # async fn run() -> eino::Result<()> {
//! use eino_postgres::{Postgres, PostgresCheckpointStore, PostgresChunks};
//! let db = Postgres::connect("postgres://eino@127.0.0.1/eino", 16).await?;
//! let checkpoints = PostgresCheckpointStore::open(db.clone()).await?;
//! let chunks = PostgresChunks::open(db).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod checkpoints;
mod chunks;
mod pool;

pub use checkpoints::PostgresCheckpointStore;
pub use chunks::PostgresChunks;
pub use pool::{error, pool_error, Postgres};
