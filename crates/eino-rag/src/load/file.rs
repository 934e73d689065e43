//! One file from disk, parser chosen by extension.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use eino::component::{LoadOptions, Loader, Source};
use eino::schema::Document;
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;

use super::{parse_with, unsupported, Format, ParseOptions};

/// Loads one file; the parser is chosen by extension, unknown extensions are read as text
/// when they are valid UTF-8 without NUL bytes (anything else is a typed error naming the
/// file). The source URI is the path as given, or `file://<path>`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use eino::component::{LoadOptions, Loader, Source};
/// use eino_rag::load::FileLoader;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("notes.md");
/// std::fs::write(&path, "# Notes\nhello").unwrap();
/// let docs = FileLoader::new()
///     .load(&Source::new(path.to_str().unwrap()), &LoadOptions::default())
///     .await
///     .unwrap();
/// assert_eq!(docs[0].metadata["format"], "markdown");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct FileLoader {
    max_bytes: u64,
    options: ParseOptions,
}

impl Default for FileLoader {
    fn default() -> Self {
        Self {
            max_bytes: 100 << 20,
            options: ParseOptions::default(),
        }
    }
}

impl FileLoader {
    /// A loader with a 100 MiB size limit per file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuse files larger than `bytes`.
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Parse with `options` (e.g. one document per PDF page).
    pub fn with_parse_options(mut self, options: ParseOptions) -> Self {
        self.options = options;
        self
    }

    /// Read and parse the file at `path`, recorded as `source`.
    pub async fn load_path(&self, path: &Path, source: &str) -> Result<Vec<Document>> {
        let shown = source.to_string();
        let io = move |e: std::io::Error| {
            let kind = match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    ErrorKind::InvalidInput
                }
                _ => ErrorKind::Transient,
            };
            Error::new(kind, format!("{shown}: cannot read: {e}")).with_source(e)
        };
        let meta = tokio::fs::metadata(path).await.map_err(io.clone())?;
        if !meta.is_file() {
            return Err(Error::invalid_input(format!(
                "{source}: not a regular file"
            )));
        }
        if meta.len() > self.max_bytes {
            return Err(Error::invalid_input(format!(
                "{source}: {} bytes is over the {} byte limit",
                meta.len(),
                self.max_bytes
            )));
        }
        let bytes = tokio::fs::read(path).await.map_err(io)?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let small = bytes.len() < 256 << 10;
        if small && Format::from_extension(ext) != Some(Format::Pdf) {
            return parse_file_bytes_with(&bytes, ext, source, &self.options);
        }
        // Parsing a PDF, a large HTML page or a zip is CPU work: keep it off the async
        // workers.
        let (ext, owned, options) = (ext.to_string(), source.to_string(), self.options.clone());
        tokio::task::spawn_blocking(move || parse_file_bytes_with(&bytes, &ext, &owned, &options))
            .await
            .map_err(|e| Error::internal(format!("{source}: parser panicked: {e}")))?
    }
}

/// Parse bytes of a file whose name ends in `.{ext}` (an upload, say), recorded as `source`;
/// the parser is chosen as [`FileLoader`] does.
pub fn parse_file_bytes(bytes: &[u8], ext: &str, source: &str) -> Result<Vec<Document>> {
    parse_file_bytes_with(bytes, ext, source, &ParseOptions::default())
}

/// As [`parse_file_bytes`], with parser settings.
pub fn parse_file_bytes_with(
    bytes: &[u8],
    ext: &str,
    source: &str,
    options: &ParseOptions,
) -> Result<Vec<Document>> {
    let format = match Format::from_extension(ext) {
        Some(f) => f,
        None if looks_like_text(bytes) => Format::Text,
        None if ext.is_empty() => return Err(unsupported(source, "binary file without extension")),
        None => return Err(unsupported(source, &format!("binary .{ext} file"))),
    };
    parse_with(format, bytes, source, options)
}

fn looks_like_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

fn path_of(uri: &str) -> PathBuf {
    PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri))
}

impl Loader for FileLoader {
    fn load<'a>(
        &'a self,
        source: &'a Source,
        _: &'a LoadOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move { self.load_path(&path_of(&source.uri), &source.uri).await })
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("FileLoader")
    }
}
