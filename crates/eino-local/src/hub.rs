//! Models from the Hugging Face Hub, for users who have hub access: the files of one
//! repository revision are downloaded with `hf-hub` into the model cache (the hub's own
//! layout under `<cache>/hub`, so a file is fetched once and shared between revisions).

use std::path::{Path, PathBuf};

use eino::{Error, ErrorKind, Result};
use hf_hub::api::tokio::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use crate::models::ModelCache;

/// Files of a model repository on the Hugging Face Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubModel {
    /// `owner/name`.
    pub repo: String,
    /// A branch, tag or commit; `None`: `main`.
    pub revision: Option<String>,
    /// File paths inside the repository.
    pub files: Vec<String>,
}

/// Where and how to reach the hub.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// Base URL; `None`: `$HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Access token for gated or private repositories; `None`: `$HF_TOKEN`.
    pub token: Option<String>,
}

impl HubModel {
    /// The files `files` of `repo` at `main`.
    pub fn new(
        repo: impl Into<String>,
        files: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            repo: repo.into(),
            revision: None,
            files: files.into_iter().map(Into::into).collect(),
        }
    }

    /// At a branch, tag or commit.
    pub fn with_revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = Some(revision.into());
        self
    }

    /// Check the repository id and file paths without contacting the hub.
    pub fn validate(&self) -> Result<()> {
        let parts: Vec<&str> = self.repo.split('/').collect();
        let ok_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if parts.len() != 2 || !parts.iter().all(|p| ok_part(p)) {
            return Err(Error::invalid_input(format!(
                "hub repository {:?} is not of the form owner/name",
                self.repo
            )));
        }
        if self.files.is_empty() {
            return Err(Error::invalid_input(format!(
                "no files named for hub repository {}",
                self.repo
            )));
        }
        if let Some(f) = self
            .files
            .iter()
            .find(|f| f.is_empty() || f.starts_with('/') || f.split('/').any(|p| p == ".."))
        {
            return Err(Error::invalid_input(format!(
                "{f:?} is not a file path inside a repository"
            )));
        }
        Ok(())
    }
}

fn classify(model: &HubModel, file: &str, e: ApiError) -> Error {
    let what = format!("cannot fetch {file} from hub repository {}", model.repo);
    let kind = match &e {
        ApiError::RequestError(r) => match r.status().map(|s| s.as_u16()) {
            Some(401 | 403) => ErrorKind::Auth,
            Some(404) => ErrorKind::InvalidInput,
            Some(429) => ErrorKind::RateLimited,
            Some(s) if s >= 500 => ErrorKind::Transient,
            Some(_) => ErrorKind::InvalidInput,
            None if r.is_timeout() => ErrorKind::Timeout,
            None => ErrorKind::Transient,
        },
        ApiError::TooManyRetries(_) => ErrorKind::Transient,
        ApiError::IoError(_) => ErrorKind::Internal,
        // Missing or malformed headers: not a hub, or a proxy in the way.
        _ => ErrorKind::InvalidInput,
    };
    let hint = match kind {
        ErrorKind::Auth => " (set HF_TOKEN to a token with access)",
        ErrorKind::InvalidInput => " (check the repository, revision and file names)",
        _ => "",
    };
    Error::new(kind, format!("{what}{hint}: {e}")).with_source(e)
}

impl ModelCache {
    /// Where hub downloads live in this cache.
    pub fn hub_dir(&self) -> PathBuf {
        self.dir().join("hub")
    }

    /// Download `model`'s files (or find them already cached) and return the directory
    /// that holds them, under their repository paths.
    pub async fn fetch_hub(&self, model: &HubModel, opts: &HubOptions) -> Result<PathBuf> {
        model.validate()?;
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| std::env::var("HF_ENDPOINT").ok())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        let token = opts
            .token
            .clone()
            .or_else(|| std::env::var("HF_TOKEN").ok())
            .filter(|t| !t.is_empty());
        let api = ApiBuilder::from_cache(Cache::new(self.hub_dir()))
            .with_endpoint(endpoint.trim_end_matches('/').to_string())
            .with_token(token)
            .with_progress(false)
            .build()
            .map_err(|e| Error::internal("cannot set up the hub client").with_source(e))?;
        let revision = model.revision.clone().unwrap_or_else(|| "main".into());
        let repo = api.repo(Repo::with_revision(
            model.repo.clone(),
            RepoType::Model,
            revision,
        ));
        let mut dir = None;
        for file in &model.files {
            tracing::info!(repo = %model.repo, file = %file, "fetching model file from the hub");
            let path = repo.get(file).await.map_err(|e| classify(model, file, e))?;
            // `path` is <snapshot>/<file>; the snapshot directory holds all the files.
            let depth = file.split('/').count();
            let snapshot = path.ancestors().nth(depth).map(PathBuf::from);
            dir = dir.or(snapshot);
        }
        dir.ok_or_else(|| Error::internal("hub download returned no path"))
    }
}

/// One repository revision in the cache's hub downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSnapshot {
    /// `owner/name`.
    pub repo: String,
    /// The commit the files came from.
    pub commit: String,
    /// The directory holding the files.
    pub dir: PathBuf,
    /// File paths inside the repository, sorted.
    pub files: Vec<String>,
}

fn files_under(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

impl ModelCache {
    /// The hub downloads in this cache, by repository and commit (empty when there are none).
    pub fn hub_snapshots(&self) -> Result<Vec<HubSnapshot>> {
        let io = |e: std::io::Error| {
            Error::internal(format!("cannot read {}", self.hub_dir().display())).with_source(e)
        };
        let mut out = Vec::new();
        let repos = match std::fs::read_dir(self.hub_dir()) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(e)),
        };
        for entry in repos {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // hf-hub's layout: models--owner--name/snapshots/<commit>/<files>.
            let Some((owner, repo)) = name
                .strip_prefix("models--")
                .and_then(|r| r.split_once("--"))
            else {
                continue;
            };
            let snapshots = entry.path().join("snapshots");
            let Ok(commits) = std::fs::read_dir(&snapshots) else {
                continue;
            };
            for commit in commits {
                let dir = commit.map_err(io)?.path();
                let mut files = Vec::new();
                files_under(&dir, &dir, &mut files).map_err(io)?;
                files.sort();
                out.push(HubSnapshot {
                    repo: format!("{owner}/{repo}"),
                    commit: dir
                        .file_name()
                        .map(|c| c.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    dir,
                    files,
                });
            }
        }
        out.sort_by(|a, b| (&a.repo, &a.commit).cmp(&(&b.repo, &b.commit)));
        Ok(out)
    }
}
