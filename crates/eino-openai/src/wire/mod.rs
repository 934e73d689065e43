//! The chat-completions wire format: requests we build strictly ([`request`]), responses we
//! read leniently ([`response`]: every field optional, unknown fields and values ignored).

mod request;
mod response;

pub(crate) use request::ChatRequest;
pub(crate) use response::{to_message, usage, WireResponse};
