//! Fetching a model by Hugging Face repository id, against a local stand-in for the hub
//! (wiremock answering the hub's `resolve` URLs with ranges, ETags and commit headers, as
//! huggingface.co does). The served file is the real SmolLM2 GGUF, and the fetched copy is
//! loaded and answers.

use eino::component::{ChatModel, ChatOptions};
use eino::schema::Message;
use eino::ErrorKind;
use eino_local::testing::HubStandIn;
use eino_local::{
    GenerationConfig, HubModel, HubOptions, LocalChatModel, LocalOptions, ModelCache, SMOLLM2,
};

fn options(hub: &HubStandIn) -> HubOptions {
    HubOptions {
        endpoint: Some(hub.endpoint()),
        token: Some("test-token".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repo_id_fetches_caches_and_loads() {
    let gguf = ModelCache::default()
        .ensure(&SMOLLM2)
        .expect("fetch SmolLM2");
    let bytes = std::fs::read(gguf.join("model.gguf")).unwrap();
    let hub = HubStandIn::start().await;
    hub.serve(
        "someone/SmolLM2-GGUF",
        "main",
        "smollm2.Q4_1.gguf",
        bytes.clone(),
    )
    .await;
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let model = HubModel::new("someone/SmolLM2-GGUF", ["smollm2.Q4_1.gguf"]);

    assert!(cache.hub_snapshots().unwrap().is_empty());
    let dir = cache.fetch_hub(&model, &options(&hub)).await.unwrap();
    let file = dir.join("smollm2.Q4_1.gguf");
    assert!(dir.starts_with(cache.hub_dir()), "{}", dir.display());
    assert!(dir.ends_with(HubStandIn::COMMIT), "{}", dir.display());
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    let auth = hub.authorizations().await;
    assert!(!auth.is_empty());
    assert!(auth
        .iter()
        .all(|a| a.as_deref() == Some("Bearer test-token")));
    let snapshots = cache.hub_snapshots().unwrap();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(snapshots[0].repo, "someone/SmolLM2-GGUF");
    assert_eq!(snapshots[0].commit, HubStandIn::COMMIT);
    assert_eq!(snapshots[0].dir, dir);
    assert_eq!(snapshots[0].files, ["smollm2.Q4_1.gguf"]);

    // A second fetch is answered from the cache, with no request.
    let again = cache.fetch_hub(&model, &options(&hub)).await.unwrap();
    assert_eq!(again, dir);
    assert_eq!(hub.authorizations().await.len(), auth.len());

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
    let hub = HubStandIn::start().await;
    hub.fail("owner/private", "main", "model.gguf", 401).await;
    hub.fail("owner/down", "main", "model.gguf", 503).await;
    // Everything else: 404, as the hub answers for a missing repository or file.
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let opts = options(&hub);
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
