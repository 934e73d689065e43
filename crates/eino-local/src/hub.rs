//! Models from the Hugging Face Hub, for users who have hub access: the files of one
//! repository revision are downloaded with `hf-hub` into the model cache (the hub's own
//! layout under `<cache>/hub`, so a file is fetched once and shared between revisions).

use std::path::PathBuf;

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

    fn check(&self) -> Result<()> {
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
        model.check()?;
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
