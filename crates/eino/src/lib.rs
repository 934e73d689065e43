#![doc = include_str!("../../../README.md")]
#![warn(missing_docs)]

pub mod adk;
pub mod callbacks;
pub mod component;
pub mod compose;
mod error;
pub mod flow;
pub mod prompt;
pub mod schema;

pub use error::{Error, ErrorKind, Result};
