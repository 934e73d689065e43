//! A local stand-in for the Hugging Face Hub (feature `testing`), for tests of code that
//! fetches models by repository id without network access.
//!
//! It answers the hub's `resolve` URLs as huggingface.co does for `hf-hub`: HTTP ranges,
//! an ETag and the `x-repo-commit` header, so a download lands in the cache under
//! [`HubStandIn::COMMIT`]. Everything not served answers 404, as the hub does for a
//! missing repository or file.
//!
//! ```no_run
//! # async fn demo() -> eino::Result<()> {
//! use eino_local::testing::HubStandIn;
//! use eino_local::{HubModel, HubOptions, ModelCache};
//!
//! let hub = HubStandIn::start().await;
//! hub.serve("someone/tiny", "main", "config.json", b"{}".to_vec()).await;
//! let opts = HubOptions { endpoint: Some(hub.endpoint()), token: None };
//! let dir = ModelCache::new("model-cache")
//!     .fetch_hub(&HubModel::new("someone/tiny", ["config.json"]), &opts)
//!     .await?;
//! assert!(dir.join("config.json").exists());
//! # Ok(()) }
//! ```

use std::sync::Arc;

use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A running stand-in hub on a loopback port; it stops when dropped.
pub struct HubStandIn {
    server: MockServer,
}

/// Answers one file with HTTP ranges, as the hub's CDN does.
struct RangedFile {
    bytes: Arc<Vec<u8>>,
    etag: String,
}

impl Respond for RangedFile {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let len = self.bytes.len();
        let range = req
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        match range {
            Some((a, b)) if a < len => {
                let b = b.min(len - 1);
                ResponseTemplate::new(206)
                    .insert_header("etag", self.etag.as_str())
                    .insert_header("x-repo-commit", HubStandIn::COMMIT)
                    .insert_header("content-range", format!("bytes {a}-{b}/{len}").as_str())
                    .set_body_bytes(self.bytes[a..=b].to_vec())
            }
            _ => ResponseTemplate::new(416),
        }
    }
}

impl HubStandIn {
    /// The commit every served revision resolves to.
    pub const COMMIT: &'static str = "0123456789abcdef0123456789abcdef01234567";

    /// Start on a free loopback port.
    pub async fn start() -> Self {
        Self {
            server: MockServer::start().await,
        }
    }

    /// The base URL to pass as [`HubOptions::endpoint`](crate::HubOptions) or `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        self.server.uri()
    }

    /// Serve `bytes` as `file` of `repo` at `revision`.
    pub async fn serve(&self, repo: &str, revision: &str, file: &str, bytes: Vec<u8>) {
        // The hub's ETag for a large file is its sha256, quoted; hf-hub names blobs by it.
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let etag = format!("\"{hex}\"");
        Mock::given(method("GET"))
            .and(path(format!("/{repo}/resolve/{revision}/{file}")))
            .respond_with(RangedFile {
                bytes: Arc::new(bytes),
                etag,
            })
            .mount(&self.server)
            .await;
    }

    /// Answer every request for `file` of `repo` at `revision` with `status`.
    pub async fn fail(&self, repo: &str, revision: &str, file: &str, status: u16) {
        Mock::given(path(format!("/{repo}/resolve/{revision}/{file}")))
            .respond_with(ResponseTemplate::new(status))
            .mount(&self.server)
            .await;
    }

    /// The `Authorization` header of every request received so far (`None` where absent).
    pub async fn authorizations(&self) -> Vec<Option<String>> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| {
                r.headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .collect()
    }
}
