//! A directory tree: every matching file through [`FileLoader`], errors collected.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use eino::component::{LoadOptions, Loader, Source};
use eino::schema::Document;
use eino::{Error, Result};
use futures_util::future::BoxFuture;
use globset::{Glob, GlobSet, GlobSetBuilder};

use super::FileLoader;

/// A file that could not be loaded, and why.
#[derive(Debug)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// The typed error ([`ErrorKind::InvalidInput`](eino::ErrorKind) for corrupt or
    /// unsupported files).
    pub error: Error,
}

/// What a directory load produced: the documents, and the files that failed.
#[derive(Debug, Default)]
pub struct DirReport {
    /// Documents of every file that loaded, in path order.
    pub documents: Vec<Document>,
    /// Files that failed; the others were loaded regardless.
    pub errors: Vec<FileError>,
    /// Files skipped by the include/exclude patterns.
    pub skipped: usize,
}

/// Loads a directory recursively. Paths are matched relative to the root against the
/// include globs (all files when there are none) and the exclude globs; hidden files and
/// directories (`.git` …) are skipped unless an include pattern names them.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use eino_rag::load::DirLoader;
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("a.md"), "# A").unwrap();
/// std::fs::write(dir.path().join("b.bin"), [0u8, 1, 2]).unwrap();
/// let report = DirLoader::new().include("**/*.md").unwrap().load_dir(dir.path()).await.unwrap();
/// assert_eq!(report.documents.len(), 1);
/// assert_eq!(report.skipped, 1);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct DirLoader {
    file: FileLoader,
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

fn glob(pattern: &str) -> Result<Glob> {
    Glob::new(pattern).map_err(|e| Error::invalid_input(format!("bad glob {pattern:?}: {e}")))
}

fn set(globs: &[Glob]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(g.clone());
    }
    b.build()
        .map_err(|e| Error::invalid_input(format!("bad glob set: {e}")))
}

impl DirLoader {
    /// Load every non-hidden file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use `file` for each file (size limit …).
    pub fn with_file_loader(mut self, file: FileLoader) -> Self {
        self.file = file;
        self
    }

    /// Only load files matching `pattern` (any of the include patterns).
    pub fn include(mut self, pattern: &str) -> Result<Self> {
        self.include.push(glob(pattern)?);
        Ok(self)
    }

    /// Never load files matching `pattern`.
    pub fn exclude(mut self, pattern: &str) -> Result<Self> {
        self.exclude.push(glob(pattern)?);
        Ok(self)
    }

    /// Load the tree under `root`. Fails only if `root` itself cannot be read.
    pub async fn load_dir(&self, root: &Path) -> Result<DirReport> {
        let (include, exclude) = (set(&self.include)?, set(&self.exclude)?);
        let root_owned = root.to_path_buf();
        let listed = tokio::task::spawn_blocking(move || list(&root_owned))
            .await
            .map_err(|e| Error::internal(format!("directory walk panicked: {e}")))??;
        let mut report = DirReport::default();
        for (path, rel) in listed.files {
            let hidden = rel.split('/').any(|part| part.starts_with('.'));
            let wanted = if include.is_empty() {
                !hidden
            } else {
                include.is_match(&rel)
            };
            if !wanted || exclude.is_match(&rel) {
                report.skipped += 1;
                continue;
            }
            let source = path.to_string_lossy().into_owned();
            match self.file.load_path(&path, &source).await {
                Ok(docs) => report.documents.extend(docs),
                Err(error) => report.errors.push(FileError { path, error }),
            }
        }
        report.errors.extend(listed.errors);
        Ok(report)
    }
}

struct Listing {
    files: Vec<(PathBuf, String)>,
    errors: Vec<FileError>,
}

fn list(root: &Path) -> Result<Listing> {
    if !root.is_dir() {
        return Err(Error::invalid_input(format!(
            "{}: not a readable directory",
            root.display()
        )));
    }
    let mut out = Listing {
        files: Vec::new(),
        errors: Vec::new(),
    };
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        match entry {
            Ok(e) if e.file_type().is_file() => {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap_or(e.path())
                    .to_string_lossy()
                    .replace('\\', "/");
                out.files.push((e.path().to_path_buf(), rel));
            }
            Ok(_) => {}
            Err(e) => {
                let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                let error = Error::invalid_input(format!("{}: cannot read: {e}", path.display()));
                out.errors.push(FileError { path, error });
            }
        }
    }
    Ok(out)
}

impl Loader for DirLoader {
    /// Loads the directory; failed files are logged as warnings (use
    /// [`DirLoader::load_dir`] to get them).
    fn load<'a>(
        &'a self,
        source: &'a Source,
        _: &'a LoadOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move {
            let root = source.uri.strip_prefix("file://").unwrap_or(&source.uri);
            let report = self.load_dir(Path::new(root)).await?;
            for failed in &report.errors {
                tracing::warn!(path = %failed.path.display(), error = %failed.error, "file skipped");
            }
            Ok(report.documents)
        })
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("DirLoader")
    }
}
