//! Component interfaces: chat models, templates, tools, retrievers, embedders, indexers,
//! loaders and transformers. Each is object-safe (use `Arc<dyn …>`) and takes an options
//! struct with the common options plus [`Extensions`] for implementation-specific ones.

mod extensions;
mod model;
mod retrieval;
mod tool;

pub use crate::prompt::ChatTemplate;
pub use extensions::Extensions;
pub use model::{ChatCallbackInput, ChatModel, ChatOptions};
pub use retrieval::{
    EmbedOptions, Embedder, IndexOptions, Indexer, LoadOptions, Loader, RetrieveOptions, Retriever,
    Source, TransformOptions, Transformer,
};
pub use tool::{tool_fn, FnTool, Tool, ToolOptions, ToolResume};
