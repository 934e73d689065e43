//! Fetching a model by Hugging Face repository id, against a local stand-in for the hub
//! (wiremock answering the hub's `resolve` URLs with ranges, ETags and commit headers, as
//! huggingface.co does). The served file is the real SmolLM2 GGUF, and the fetched copy is
//! loaded and answers.

#![cfg(feature = "hub")]

use std::sync::Arc;

use eino::component::{ChatModel, ChatOptions};
use eino::schema::Message;
use eino::ErrorKind;
use eino_local::{
    GenerationConfig, HubModel, HubOptions, LocalChatModel, LocalOptions, ModelCache, SMOLLM2,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves one file with HTTP ranges.
struct RangedFile(Arc<Vec<u8>>);

impl Respond for RangedFile {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let len = self.0.len();
        let range = req
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        let base = ResponseTemplate::new(206)
            .insert_header(
                "etag",
                "\"b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53\"",
            )
            .insert_header("x-repo-commit", COMMIT);
        match range {
            Some((a, b)) if a < len => {
                let b = b.min(len - 1);
                base.insert_header("content-range", format!("bytes {a}-{b}/{len}").as_str())
                    .set_body_bytes(self.0[a..=b].to_vec())
            }
            _ => ResponseTemplate::new(416),
        }
    }
}

fn options(server: &MockServer) -> HubOptions {
    HubOptions {
        endpoint: Some(server.uri()),
        token: Some("test-token".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repo_id_fetches_caches_and_loads() {
    let gguf = ModelCache::default()
        .ensure(&SMOLLM2)
        .expect("fetch SmolLM2");
    let bytes = Arc::new(std::fs::read(gguf.join("model.gguf")).unwrap());
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/someone/SmolLM2-GGUF/resolve/main/smollm2.Q4_1.gguf"))
        .respond_with(RangedFile(bytes.clone()))
        .mount(&server)
        .await;
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let model = HubModel::new("someone/SmolLM2-GGUF", ["smollm2.Q4_1.gguf"]);

    let dir = cache.fetch_hub(&model, &options(&server)).await.unwrap();
    let file = dir.join("smollm2.Q4_1.gguf");
    assert!(dir.starts_with(cache.hub_dir()), "{}", dir.display());
    assert!(dir.ends_with(COMMIT), "{}", dir.display());
    assert_eq!(std::fs::read(&file).unwrap(), *bytes);
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| r
        .headers
        .get("authorization")
        .is_some_and(|v| v == "Bearer test-token")));

    // A second fetch is answered from the cache, with no request.
    let again = cache.fetch_hub(&model, &options(&server)).await.unwrap();
    assert_eq!(again, dir);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        requests.len()
    );

    let chat = tokio::task::spawn_blocking(move || {
        LocalChatModel::load(&file, &LocalOptions::default(), GenerationConfig::default())
    })
    .await
    .unwrap()
    .unwrap();
    let answer = chat
        .generate(
            &[Message::user("What is the capital of Germany?")],
            &ChatOptions::default()
                .with_temperature(0.0)
                .with_max_tokens(24),
        )
        .await
        .unwrap();
    assert!(answer.content.contains("Berlin"), "{}", answer.content);
}

#[tokio::test]
async fn hub_errors_are_typed() {
    let server = MockServer::start().await;
    Mock::given(path("/owner/private/resolve/main/model.gguf"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(path("/owner/down/resolve/main/model.gguf"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    // Everything else: 404, as the hub answers for a missing repository or file.
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let opts = options(&server);
    let kind = |repo: &str, file: &str| {
        let (cache, opts) = (&cache, &opts);
        let m = HubModel::new(repo, [file]);
        async move { cache.fetch_hub(&m, opts).await.unwrap_err() }
    };

    let e = kind("owner/private", "model.gguf").await;
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.to_string().contains("HF_TOKEN"), "{e}");
    let e = kind("owner/missing", "model.gguf").await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("owner/missing"), "{e}");
    let e = kind("owner/down", "model.gguf").await;
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.is_retryable(), "{e}");

    for (repo, file) in [
        ("no-slash", "f"),
        ("a/b/c", "f"),
        ("../x", "f"),
        ("a/b", "../f"),
        ("a/b", ""),
    ] {
        let e = kind(repo, file).await;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{repo} {file}: {e}");
    }
    assert!(cache
        .fetch_hub(&HubModel::new("a/b", Vec::<String>::new()), &opts)
        .await
        .is_err());
}
