//! The BERT sentence embedder (all-MiniLM-L6-v2 by default): mean pooling over the
//! attention mask, L2 normalisation, batches padded to their longest input. The forward
//! pass is ours (`bert.rs`): its dense layers run in int8 where the CPU has VNNI, unless
//! [`LocalOptions::keep_quantization`] asks for the stored f32 weights, and in f32
//! elsewhere.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use eino::component::{EmbedOptions, Embedder};
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::bert::Bert;
use crate::models::{ModelCache, MINILM};
use crate::quant::WeightPolicy;
use crate::threads::{init_threads, LocalOptions};

pub(crate) fn candle_error(what: &str) -> impl FnOnce(candle_core::Error) -> Error + '_ {
    move |e| Error::new(ErrorKind::Internal, format!("{what}: {e}"))
}

struct Inner {
    model: Bert,
    tokenizer: Tokenizer,
    device: Device,
}

/// A local BERT embedder. Cheap to clone; safe to call concurrently (inference runs on
/// tokio's blocking pool, so the async runtime stays responsive).
#[derive(Clone)]
pub struct MiniLmEmbedder {
    inner: Arc<Inner>,
    batch_size: usize,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// Tokens (texts × padded length) of one forward pass at most: one long text, or many
/// short ones. Measured on 1000-character chunks: 256 → 15.0 chunks/s, 1024 → 14.1,
/// 4096 → 11.5, 8192 → 6.7 (docs/benchmarks.md).
const FORWARD_TOKENS: usize = 256;

/// MiniLM was trained on up to 256 tokens (`sentence_bert_config.max_seq_length`).
const MAX_TOKENS: usize = 256;

impl MiniLmEmbedder {
    /// Load from a directory with `model.safetensors`, `tokenizer.json` and `config.json`.
    pub fn load(dir: &Path, opts: &LocalOptions) -> Result<Self> {
        init_threads(opts);
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                Error::invalid_input(format!("cannot read {}", dir.join(name).display()))
                    .with_source(e)
            })
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| Error::invalid_input("config.json is not a BERT config").with_source(e))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| Error::invalid_input(format!("tokenizer.json is not readable: {e}")))?;
        // The file pads every input to 128 tokens: right, but many times slower.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::internal(format!("cannot set truncation: {e}")))?;
        let device = Device::Cpu;
        let vb =
            VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &device)
                .map_err(candle_error("model.safetensors is not readable"))?;
        let policy = WeightPolicy::for_f32_weights(opts.keep_quantization);
        let model =
            Bert::load(vb, &config, policy).map_err(candle_error("cannot build the BERT model"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                device,
            }),
            batch_size: 32,
        })
    }

    /// The default model from the default cache, fetched first if missing.
    pub async fn load_default(opts: LocalOptions) -> Result<Self> {
        tokio::task::spawn_blocking(move || {
            let dir = ModelCache::default().ensure(&MINILM)?;
            Self::load(&dir, &opts)
        })
        .await
        .map_err(|e| Error::internal(format!("model loading task failed: {e}")))?
    }

    /// Texts per forward pass (default 32).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Embed one batch on the calling thread.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        let enc = inner
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::invalid_input(format!("cannot tokenize: {e}")))?;
        let (b, len) = (enc.len(), enc[0].get_ids().len());
        let fits = (FORWARD_TOKENS / len).max(1);
        if b > fits {
            // Attention holds heads × len² floats per text: 3 MB at 256 tokens, so 32 long
            // texts at once are 100 MB tensors that the allocator maps fresh (and the kernel
            // zeroes) for every operation. Smaller passes stay in reused, cached memory.
            let mut out = Vec::with_capacity(b);
            for part in texts.chunks(fits) {
                out.extend(self.embed_blocking(part)?);
            }
            return Ok(out);
        }
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            enc.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let dev = &inner.device;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(flat(&|e| e.get_ids()), (b, len), dev)?;
            let types = Tensor::from_vec(flat(&|e| e.get_type_ids()), (b, len), dev)?;
            let mask = Tensor::from_vec(flat(&|e| e.get_attention_mask()), (b, len), dev)?;
            let hidden = inner.model.forward(&ids, &types, &mask)?;
            // Mean over real tokens only.
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(candle_error("embedding failed"))
    }
}

impl Embedder for MiniLmEmbedder {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _: &'a EmbedOptions,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(self.batch_size) {
                let me = self.clone();
                let chunk = chunk.to_vec();
                let part = tokio::task::spawn_blocking(move || me.embed_blocking(&chunk))
                    .await
                    .map_err(|e| Error::internal(format!("embedding task failed: {e}")))??;
                out.extend(part);
            }
            Ok(out)
        })
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("MiniLM")
    }
}
