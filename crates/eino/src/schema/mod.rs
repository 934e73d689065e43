//! Data types shared by every component: messages, documents, tool descriptions, streams.

mod concat;
mod document;
mod message;
mod stream;
mod tool;

pub use concat::{concat_tool_calls, Concat};
pub use document::Document;
pub use message::{
    FunctionCall, Map, Media, Message, Part, ResponseMeta, Role, TokenUsage, ToolCall,
};
pub use stream::{pipe, source_ended_name, ReaderClosed, StreamReader, StreamWriter};
pub use tool::{schema_of, ToolChoice, ToolInfo};
