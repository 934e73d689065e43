//! Loaders and parsers: bytes from files or directories become [`Document`]s whose metadata
//! records where they came from (`source`), their format and a content hash, so an
//! ingestion can tell an unchanged file from a changed one.
//!
//! - [`parse`] turns bytes into documents by [`Format`] (plain text, Markdown, HTML, DOCX,
//!   PDF, optionally one document per page).
//! - [`FileLoader`] reads one file and picks the parser by extension (text fallback for
//!   unknown extensions that are valid UTF-8).
//! - [`DirLoader`] walks a directory recursively with glob include/exclude patterns; one
//!   bad file never aborts the walk, its error is collected in the [`DirReport`].
//! - [`UrlLoader`] fetches `http(s)://` documents with size and time limits and SSRF
//!   protection on by default.

mod dir;
mod docx;
mod file;
pub(crate) mod html;
mod pdf;
mod url;

use eino::schema::Document;
use eino::{Error, ErrorKind, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use dir::{DirLoader, DirReport, FileError};
pub use file::{parse_file_bytes, parse_file_bytes_with, FileLoader};
pub use url::{is_internal, UrlLoader};

/// Metadata keys the loaders write.
pub mod keys {
    /// Where the document came from (a path or URL).
    pub const SOURCE: &str = "source";
    /// The parser that read it (`text`, `markdown`, `html`).
    pub const FORMAT: &str = "format";
    /// Hex SHA-256 of the raw bytes.
    pub const CONTENT_HASH: &str = "content_hash";
    /// Size of the raw bytes.
    pub const BYTES: &str = "bytes";
    /// HTML: the page title.
    pub const TITLE: &str = "title";
    /// HTML: the meta description.
    pub const DESCRIPTION: &str = "description";
    /// HTML: the document language (`<html lang>`).
    pub const LANGUAGE: &str = "language";
    /// PDF: the page count of the file.
    pub const PAGES: &str = "pages";
    /// PDF read page by page: this document's page number (from 1).
    pub const PAGE: &str = "page";
}

/// A document format the parsers understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// UTF-8 text, kept as is.
    Text,
    /// Markdown, kept as is (the Markdown splitter reads its structure).
    Markdown,
    /// HTML: main text out, title/description/language into metadata.
    Html,
    /// Word (Office Open XML): the paragraphs' text, one per line.
    Docx,
    /// PDF: the text of every page (one document, or one per page, see [`ParseOptions`]).
    Pdf,
}

/// Settings of the parsers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Bytes a document may inflate to while it is parsed (PDF streams, a DOCX's body), so
    /// a small file cannot exhaust memory (default 64 MiB). A larger one is an
    /// `InvalidInput` error for that file.
    pub max_inflated_bytes: u64,
    /// Time a document may take to parse (PDFs are checked between pages); a slower one is
    /// a `Timeout` error for that file. Default: no limit.
    pub max_parse_time: Option<std::time::Duration>,
    /// PDF: one document per page (ids `<source>#page<n>`, metadata `page`) instead of
    /// one document with the pages separated by form feeds.
    pub pdf_per_page: bool,
    /// HTML: keep the page's markup as the content (metadata is still extracted), for
    /// the [`HtmlHeaderSplitter`](crate::splitter::HtmlHeaderSplitter), which needs the
    /// headings; by default the main text is extracted.
    pub html_markup: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            max_inflated_bytes: 64 << 20,
            max_parse_time: None,
            pdf_per_page: false,
            html_markup: false,
        }
    }
}

impl ParseOptions {
    /// Limit what a document may inflate to (see [`ParseOptions::max_inflated_bytes`]).
    pub fn with_max_inflated_bytes(mut self, bytes: u64) -> Self {
        self.max_inflated_bytes = bytes;
        self
    }

    /// Limit a document's parse time (see [`ParseOptions::max_parse_time`]).
    pub fn with_max_parse_time(mut self, limit: std::time::Duration) -> Self {
        self.max_parse_time = Some(limit);
        self
    }

    /// Read PDFs page by page (see [`ParseOptions::pdf_per_page`]).
    pub fn with_pdf_per_page(mut self, on: bool) -> Self {
        self.pdf_per_page = on;
        self
    }

    /// Keep HTML markup (see [`ParseOptions::html_markup`]).
    pub fn with_html_markup(mut self, on: bool) -> Self {
        self.html_markup = on;
        self
    }
}

impl Format {
    /// The format for a file extension (case-insensitive), `None` when unknown.
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "txt" | "text" | "log" | "csv" | "tsv" | "json" | "yaml" | "yml" | "toml" | "rs"
            | "py" | "go" | "js" | "ts" => Some(Self::Text),
            "md" | "markdown" | "mdx" => Some(Self::Markdown),
            "html" | "htm" | "xhtml" => Some(Self::Html),
            "docx" => Some(Self::Docx),
            "pdf" => Some(Self::Pdf),
            _ => None,
        }
    }

    /// The name written to the `format` metadata key.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Docx => "docx",
            Self::Pdf => "pdf",
        }
    }
}

/// Hex SHA-256 of `bytes`, the value of the `content_hash` key.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Parse `bytes` read from `source` as `format`. The document id is the source, so
/// re-loading the same file gives the same id (and the splitters the same chunk ids).
///
/// ```
/// use eino_rag::load::{parse, Format, keys};
/// let html = b"<html lang=en><head><title>T</title></head><body><p>Hello</p><script>x()</script></body></html>";
/// let docs = parse(Format::Html, html, "page.html").unwrap();
/// assert_eq!(docs[0].content, "Hello");
/// assert_eq!(docs[0].metadata[keys::TITLE], "T");
/// ```
pub fn parse(format: Format, bytes: &[u8], source: &str) -> Result<Vec<Document>> {
    parse_with(format, bytes, source, &ParseOptions::default())
}

/// As [`parse`], with parser settings (e.g. one document per PDF page).
pub fn parse_with(
    format: Format,
    bytes: &[u8],
    source: &str,
    options: &ParseOptions,
) -> Result<Vec<Document>> {
    let text = || {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::invalid_input(format!(
                "{source}: not valid UTF-8 text (byte {}), cannot parse as {}",
                e.valid_up_to(),
                format.name()
            ))
        })?;
        Ok::<_, Error>(text.strip_prefix('\u{feff}').unwrap_or(text))
    };
    let mut doc = Document::new(source, "");
    let mut pages = Vec::new();
    match format {
        Format::Text | Format::Markdown => doc.content = text()?.to_string(),
        Format::Docx => doc.content = docx::extract(bytes, source, options.max_inflated_bytes)?,
        Format::Pdf => {
            pages = pdf::pages(bytes, source, options)?;
            doc.metadata
                .insert(keys::PAGES.into(), Value::from(pages.len()));
            if !options.pdf_per_page {
                doc.content = std::mem::take(&mut pages).join("\n\u{c}\n");
            }
        }
        Format::Html => {
            let page = html::extract(text()?);
            doc.content = if options.html_markup {
                text()?.to_string()
            } else {
                page.text
            };
            for (key, value) in [
                (keys::TITLE, page.title),
                (keys::DESCRIPTION, page.description),
                (keys::LANGUAGE, page.language),
            ] {
                if let Some(v) = value {
                    doc.metadata.insert(key.into(), Value::String(v));
                }
            }
        }
    }
    let meta = &mut doc.metadata;
    meta.insert(keys::SOURCE.into(), Value::String(source.into()));
    meta.insert(keys::FORMAT.into(), Value::String(format.name().into()));
    meta.insert(
        keys::CONTENT_HASH.into(),
        Value::String(content_hash(bytes)),
    );
    meta.insert(keys::BYTES.into(), Value::from(bytes.len()));
    if pages.is_empty() {
        return Ok(vec![doc]);
    }
    Ok(pages
        .into_iter()
        .enumerate()
        .map(|(i, content)| {
            let mut page = Document {
                id: format!("{source}#page{}", i + 1),
                content,
                metadata: doc.metadata.clone(),
                ..Document::default()
            };
            page.metadata.insert(keys::PAGE.into(), Value::from(i + 1));
            page
        })
        .collect())
}

fn unsupported(source: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{source}: unsupported file ({why})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            content_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn invalid_utf8_names_the_source() {
        let err = parse(Format::Text, &[b'a', 0xff, 0xfe], "bad.txt").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("bad.txt"), "{}", err.message());
    }

    #[test]
    fn bom_is_dropped_and_metadata_written() {
        let docs = parse(Format::Markdown, "\u{feff}# T\nx".as_bytes(), "a.md").unwrap();
        assert_eq!(docs[0].content, "# T\nx");
        assert_eq!(docs[0].id, "a.md");
        assert_eq!(docs[0].metadata[keys::FORMAT], "markdown");
        assert_eq!(docs[0].metadata[keys::BYTES], 8);
    }
}
