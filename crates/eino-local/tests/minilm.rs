//! The real MiniLM model: reference values from the sentence-transformers documentation
//! (shared/reference/local-models.md). The model is fetched into the cache on first use.

use eino::component::Embedder;
use eino_local::{LocalOptions, MiniLmEmbedder, ModelCache, MINILM};

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // Embeddings are unit length: the dot product is the cosine.
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn model() -> MiniLmEmbedder {
    model_with(&LocalOptions::default())
}

fn model_with(opts: &LocalOptions) -> MiniLmEmbedder {
    let dir = ModelCache::default().ensure(&MINILM).expect("fetch MiniLM");
    MiniLmEmbedder::load(&dir, opts).expect("load MiniLM")
}

/// The stored f32 weights, exactly as sentence-transformers runs them.
fn exact() -> MiniLmEmbedder {
    model_with(&LocalOptions {
        keep_quantization: true,
        ..LocalOptions::default()
    })
}

fn texts(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

const SENTENCES: [&str; 6] = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A monkey is playing drums.",
];

/// The reference cosines and components, within `tolerance`; the vectors.
async fn check_reference(m: &MiniLmEmbedder, tolerance: f32) -> Vec<Vec<f32>> {
    let v = m
        .embed(&texts(&SENTENCES), &Default::default())
        .await
        .unwrap();
    assert_eq!(v.len(), 6);
    assert!(v.iter().all(|e| e.len() == 384));
    let close = |got: f32, want: f32| assert!((got - want).abs() < tolerance, "{got} vs {want}");
    close(cosine(&v[0], &v[1]), 0.6660);
    close(cosine(&v[0], &v[2]), 0.1046);
    close(cosine(&v[1], &v[2]), 0.1411);
    close(cosine(&v[3], &v[4]), 0.7553);
    close(cosine(&v[3], &v[5]), 0.0476);
    let want = [
        0.033242, 0.004406, -0.006277, 0.048379, -0.138702, -0.033617,
    ];
    for (g, w) in v[3].iter().zip(want) {
        close(*g, w);
    }
    let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    v
}

#[tokio::test]
async fn reference_cosines_and_components() {
    check_reference(&exact(), 1e-3).await;
}

/// The default (int8 dense layers where the CPU has VNNI) stays close to the stored
/// weights: each vector within a cosine of 0.995 of the f32 one (0.997–0.999 measured on
/// this machine kind), the reference cosines within 0.015 (0.0103 at most measured). On a
/// CPU without VNNI the default is the f32 model and this is the reference test again.
#[tokio::test]
async fn default_weights_stay_close_to_the_reference() {
    let fast = check_reference(&model(), 0.015).await;
    let want = exact()
        .embed(&texts(&SENTENCES), &Default::default())
        .await
        .unwrap();
    for (f, w) in fast.iter().zip(&want) {
        let c = cosine(f, w);
        assert!(c > 0.995, "{c}");
    }
}

#[tokio::test]
async fn batching_and_padding_do_not_change_results() {
    let m = model();
    let alone = m
        .embed_blocking(&texts(&["A man is eating food."]))
        .unwrap();
    // Padded next to a much longer text, and split across batches of 2.
    let long = "word ".repeat(300);
    let batched = m
        .clone()
        .with_batch_size(2)
        .embed(
            &texts(&["x", &long, "A man is eating food."]),
            &Default::default(),
        )
        .await
        .unwrap();
    for (a, b) in alone[0].iter().zip(&batched[2]) {
        assert!((a - b).abs() < 1e-4);
    }
    assert_eq!(
        batched.len(),
        3,
        "a 300-word text is truncated, not rejected"
    );
    assert!(m.embed_blocking(&[]).unwrap().is_empty());
}

#[test]
fn missing_model_is_a_clear_error() {
    let cache = ModelCache::new(std::env::temp_dir().join("eino-no-models-here"));
    let e = cache.get(&MINILM).unwrap_err();
    assert_eq!(e.kind(), eino::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("fetch_models"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_embeddings_match_sequential() {
    let m = model();
    let inputs = texts(&["A man is eating food.", "It's so sunny outside!"]);
    let want = m.embed_blocking(&inputs).unwrap();
    let opts = eino::component::EmbedOptions::default();
    let calls = (0..4).map(|_| m.embed(&inputs, &opts));
    for got in futures_util::future::join_all(calls).await {
        assert_eq!(got.unwrap(), want);
    }
}

/// Our forward pass with the stored f32 weights (the default on CPUs without VNNI) is
/// candle-transformers' `BertModel` up to rounding: same checkpoint, same tokens, mean
/// pooling and normalisation done here by hand on candle's hidden states.
#[test]
fn the_f32_pass_matches_candles_bert_model() {
    use candle_core::{DType, Device, Tensor};
    use candle_transformers::models::bert::{BertModel, Config};

    let dir = ModelCache::default().ensure(&MINILM).expect("fetch MiniLM");
    let config: Config =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    // The file pads every input to 128 tokens; one text needs no padding.
    tokenizer.with_padding(None);
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let vb = candle_nn::VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
        .unwrap();
    let candle = BertModel::load(vb, &config).unwrap();
    let ours = exact();
    for text in SENTENCES {
        let enc = tokenizer.encode(text, true).unwrap();
        let ids = Tensor::new(enc.get_ids(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let types = ids.zeros_like().unwrap();
        let hidden = candle.forward(&ids, &types, None).unwrap();
        let mean = hidden.mean(1).unwrap().squeeze(0).unwrap();
        let norm = mean.sqr().unwrap().sum_all().unwrap().sqrt().unwrap();
        let want: Vec<f32> = mean.broadcast_div(&norm).unwrap().to_vec1().unwrap();
        let got = &ours.embed_blocking(&texts(&[text])).unwrap()[0];
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{text}: components differ by {worst}");
    }
}
