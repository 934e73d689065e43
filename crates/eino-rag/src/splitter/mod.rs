//! Splitters: recursive (semantic-boundary) text splitting, and Markdown and HTML
//! splitters that record each chunk's header path, on the `text-splitter` crate; a
//! [`SemanticSplitter`] that cuts where sentence embeddings change. Chunk ids derive
//! from the parent id (`<parent>#<n>`), so re-splitting a document gives the same ids.
//!
//! Sizes are characters by default; [`Size::Custom`] measures in tokens (or anything
//! else), e.g. with the embedding model's tokenizer:
//!
//! ```
//! use std::sync::Arc;
//! use eino::schema::Document;
//! use eino_rag::{RecursiveSplitter, Size};
//! // Stand-in for `|s| tokenizer.encode(s, false).unwrap().len()`.
//! let tokens = Size::Custom(Arc::new(|s: &str| s.split_whitespace().count()));
//! let chunks = RecursiveSplitter::new(4).with_size(tokens)
//!     .split(&Document::new("d", "one two three four five six seven")).unwrap();
//! assert_eq!(chunks[0].content, "one two three four");
//! ```

use std::sync::Arc;

use eino::component::{TransformOptions, Transformer};
use eino::schema::Document;
use eino::{Error, Result};
use futures_util::future::BoxFuture;
use serde_json::Value;
use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};

mod semantic;
pub use semantic::SemanticSplitter;

/// How chunk size is measured.
#[derive(Clone)]
pub enum Size {
    /// Unicode characters.
    Chars,
    /// Any measure, e.g. tokens of the embedding model's tokenizer.
    Custom(Arc<dyn Fn(&str) -> usize + Send + Sync>),
}

impl std::fmt::Debug for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Size::Chars => f.write_str("Chars"),
            Size::Custom(_) => f.write_str("Custom"),
        }
    }
}

struct Sizer(Size);

impl ChunkSizer for Sizer {
    fn size(&self, chunk: &str) -> usize {
        match &self.0 {
            Size::Chars => chunk.chars().count(),
            Size::Custom(f) => f(chunk),
        }
    }
}

/// Metadata keys the splitters write.
pub mod keys {
    /// The id of the document a chunk came from.
    pub const PARENT_ID: &str = "parent_id";
    /// The chunk's position in its document.
    pub const CHUNK_INDEX: &str = "chunk_index";
    /// Markdown and HTML: the headers above the chunk, outermost first.
    pub const HEADERS: &str = "headers";
}

fn config(max: usize, overlap: usize, size: &Size) -> Result<ChunkConfig<Sizer>> {
    ChunkConfig::new(max)
        .with_overlap(overlap)
        .map_err(|e| Error::invalid_input(format!("bad splitter settings: {e}")))
        .map(|c| c.with_sizer(Sizer(size.clone())))
}

fn chunk_doc(parent: &Document, i: usize, text: &str) -> Document {
    let mut d = Document {
        id: format!("{}#{i}", parent.id),
        content: text.to_string(),
        metadata: parent.metadata.clone(),
        ..Document::default()
    };
    d.metadata
        .insert(keys::PARENT_ID.into(), Value::String(parent.id.clone()));
    d.metadata.insert(keys::CHUNK_INDEX.into(), Value::from(i));
    d
}

/// Splits text at the largest semantic boundary that fits (paragraphs, lines, sentences,
/// words, characters), with optional overlap.
#[derive(Debug, Clone)]
pub struct RecursiveSplitter {
    max: usize,
    overlap: usize,
    size: Size,
}

impl RecursiveSplitter {
    /// Split one document.
    pub fn split(&self, doc: &Document) -> Result<Vec<Document>> {
        let s = TextSplitter::new(config(self.max, self.overlap, &self.size)?);
        Ok(s.chunks(&doc.content)
            .enumerate()
            .map(|(i, c)| chunk_doc(doc, i, c))
            .collect())
    }
}

/// Splits Markdown along its structure (headings, blocks, then text) and records the
/// heading path above each chunk in metadata `headers`.
#[derive(Debug, Clone)]
pub struct MarkdownHeaderSplitter {
    max: usize,
    overlap: usize,
    size: Size,
}

/// ATX headings (`#`–`######`) outside fenced code, with their byte offsets.
fn headings(md: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut fenced = false;
    for line in md.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            fenced = !fenced;
        } else if !fenced {
            let level = t.chars().take_while(|c| *c == '#').count();
            let rest = &t[level..];
            if (1..=6).contains(&level) && (rest.starts_with(' ') || rest.trim().is_empty()) {
                let title = rest.trim().trim_end_matches('#').trim().to_string();
                out.push((offset, level, title));
            }
        }
        offset += line.len();
    }
    out
}

impl MarkdownHeaderSplitter {
    /// Split one document.
    pub fn split(&self, doc: &Document) -> Result<Vec<Document>> {
        let s = MarkdownSplitter::new(config(self.max, self.overlap, &self.size)?);
        let heads = headings(&doc.content);
        Ok(s.chunk_indices(&doc.content)
            .enumerate()
            .map(|(i, (start, text))| {
                // The path of headings in force where the chunk starts (a chunk that starts
                // with a heading is under it).
                let mut path: Vec<(usize, &str)> = Vec::new();
                for (_, level, title) in heads.iter().take_while(|(off, _, _)| *off <= start) {
                    path.retain(|(l, _)| l < level);
                    path.push((*level, title));
                }
                let mut d = chunk_doc(doc, i, text);
                let titles: Vec<Value> = path
                    .iter()
                    .map(|(_, t)| Value::String(t.to_string()))
                    .collect();
                d.metadata
                    .insert(keys::HEADERS.into(), Value::Array(titles));
                d
            })
            .collect())
    }
}

/// Splits HTML at its headings (`<h1>`–`<h6>`) and records the heading path above each
/// chunk in metadata `headers`; a section longer than the size limit is split further at
/// text boundaries. Reads the main content only (no scripts, navigation or page chrome).
/// The content must be HTML: load pages with
/// [`ParseOptions::with_html_markup`](crate::load::ParseOptions::with_html_markup).
///
/// ```
/// use eino::schema::Document;
/// use eino_rag::splitter::HtmlHeaderSplitter;
/// let page = Document::new("p.html", "<h1>Tides</h1><p>High at dawn.</p><h2>Lows</h2><p>At dusk.</p>");
/// let chunks = HtmlHeaderSplitter::new(200).split(&page).unwrap();
/// assert_eq!(chunks[1].content, "Lows\nAt dusk.");
/// assert_eq!(chunks[1].metadata["headers"], serde_json::json!(["Tides", "Lows"]));
/// ```
#[derive(Debug, Clone)]
pub struct HtmlHeaderSplitter {
    max: usize,
    overlap: usize,
    size: Size,
}

impl HtmlHeaderSplitter {
    /// Split one document.
    pub fn split(&self, doc: &Document) -> Result<Vec<Document>> {
        let s = TextSplitter::new(config(self.max, self.overlap, &self.size)?);
        let mut out = Vec::new();
        for section in crate::load::html::sections(&doc.content) {
            let titles: Vec<Value> = section.headers.into_iter().map(Value::String).collect();
            for text in s.chunks(&section.text) {
                let mut d = chunk_doc(doc, out.len(), text);
                d.metadata
                    .insert(keys::HEADERS.into(), Value::Array(titles.clone()));
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// The settings and `Transformer` impl the splitters share.
macro_rules! splitter_common {
    ($t:ident) => {
        impl $t {
            /// Chunks of at most `max` characters.
            pub fn new(max: usize) -> Self {
                Self {
                    max,
                    overlap: 0,
                    size: Size::Chars,
                }
            }

            /// Repeat up to `overlap` of the previous chunk at the start of the next.
            pub fn with_overlap(mut self, overlap: usize) -> Self {
                self.overlap = overlap;
                self
            }

            /// Measure size with `size` instead of characters.
            pub fn with_size(mut self, size: Size) -> Self {
                self.size = size;
                self
            }
        }

        impl Transformer for $t {
            fn transform<'a>(
                &'a self,
                docs: Vec<Document>,
                _: &'a TransformOptions,
            ) -> BoxFuture<'a, Result<Vec<Document>>> {
                Box::pin(async move {
                    let mut out = Vec::new();
                    for d in &docs {
                        out.extend(self.split(d)?);
                    }
                    Ok(out)
                })
            }

            fn type_name(&self) -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
        }
    };
}

splitter_common!(RecursiveSplitter);
splitter_common!(MarkdownHeaderSplitter);
splitter_common!(HtmlHeaderSplitter);
