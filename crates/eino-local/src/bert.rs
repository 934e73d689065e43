//! Our BERT encoder forward pass, with the dense layers in int8 (Q8_0) where the CPU has
//! VNNI and in f32 elsewhere.
//!
//! Why not candle-transformers' `BertModel`: it runs every dense layer as an f32 matmul,
//! which on a VNNI machine reads a 1000-character chunk (~250 tokens) at about 5 a second
//! per core, and it calls libm once per element for GELU's erf and the softmax's exp (a
//! fifth of its time). The dense layers are nine tenths of the work, and candle's tiled
//! int8 kernels (AVX-VNNI / AVX512-VNNI) do them several times faster; the weights are
//! stored as Q8_0 (per-block scales of 32 values), padded like the chat model's so those
//! kernels apply. Without VNNI, candle's Q8_0 matmul is slower than its f32 one, so the
//! weights stay f32 ([`WeightPolicy::for_f32_weights`]); the pass is still ours, 1.2–1.5×
//! `BertModel` on an AVX2 machine (our GELU and softmax, one fused q/k/v projection).
//! Attention, layer norms and GELU stay in f32 (GELU and the softmax through our
//! vectorized kernels).
//! With int8 weights each vector stays within a cosine of about 0.998 of the f32 model's
//! (tests/minilm.rs), and retrieval on the man-pages set does not change (nDCG@10 0.643
//! against 0.641, docs/benchmarks.md). Keeping the attention projections in f32 gets
//! 0.9993 for a quarter of the int8 work in f32 again; the measured retrieval gain was
//! 0.0006, so they are int8 too.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;

use crate::kernels;
use crate::quant::{Linear, WeightPolicy};

/// A dense layer: an int8 (or f32, see the policy) weight and an f32 bias.
#[derive(Debug)]
struct Dense {
    w: Linear,
    b: Tensor,
}

impl Dense {
    fn load(vb: VarBuilder, out: usize, inp: usize, policy: WeightPolicy) -> Result<Self> {
        let w = vb.get((out, inp), "weight")?;
        Ok(Self {
            w: Linear::from_f32(&w, policy)?,
            b: vb.get(out, "bias")?,
        })
    }

    /// Several layers over the same input as one: `[q; k; v]` in one matmul.
    fn fused(parts: &[(Tensor, Tensor)], policy: WeightPolicy) -> Result<Self> {
        let w = Tensor::cat(&parts.iter().map(|(w, _)| w).collect::<Vec<_>>(), 0)?;
        let b = Tensor::cat(&parts.iter().map(|(_, b)| b).collect::<Vec<_>>(), 0)?;
        Ok(Self {
            w: Linear::from_f32(&w, policy)?,
            b,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.w.forward(x)?.broadcast_add(&self.b)
    }
}

#[derive(Debug)]
struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            w: vb.get(size, "weight")?,
            b: vb.get(size, "bias")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps)
    }
}

#[derive(Debug)]
struct Layer {
    qkv: Dense,
    out: Dense,
    attn_norm: LayerNorm,
    up: Dense,
    down: Dense,
    ffn_norm: LayerNorm,
}

/// A BERT encoder (absolute positions, GELU), immutable and shared by concurrent calls.
#[derive(Debug)]
pub(crate) struct Bert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
}

impl Bert {
    /// The encoder of a Hugging Face `BertModel` checkpoint (tensor names without or with
    /// a `bert.` prefix).
    pub(crate) fn load(vb: VarBuilder, c: &Config, policy: WeightPolicy) -> Result<Self> {
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let (h, inner) = (c.hidden_size, c.intermediate_size);
        if c.num_attention_heads == 0 || h % c.num_attention_heads != 0 {
            candle_core::bail!(
                "{} attention heads do not divide the width {h}",
                c.num_attention_heads
            );
        }
        let e = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let part = |name: &str| -> Result<(Tensor, Tensor)> {
                let p = a.pp("self").pp(name);
                Ok((p.get((h, h), "weight")?, p.get(h, "bias")?))
            };
            layers.push(Layer {
                qkv: Dense::fused(&[part("query")?, part("key")?, part("value")?], policy)?,
                out: Dense::load(a.pp("output.dense"), h, h, policy)?,
                attn_norm: LayerNorm::load(a.pp("output.LayerNorm"), h, c.layer_norm_eps)?,
                up: Dense::load(l.pp("intermediate.dense"), inner, h, policy)?,
                down: Dense::load(l.pp("output.dense"), h, inner, policy)?,
                ffn_norm: LayerNorm::load(l.pp("output.LayerNorm"), h, c.layer_norm_eps)?,
            });
        }
        Ok(Self {
            word: e.get((c.vocab_size, h), "word_embeddings.weight")?,
            position: e.get((c.max_position_embeddings, h), "position_embeddings.weight")?,
            token_type: e.get((c.type_vocab_size, h), "token_type_embeddings.weight")?,
            norm: LayerNorm::load(e.pp("LayerNorm"), h, c.layer_norm_eps)?,
            layers,
            heads: c.num_attention_heads,
        })
    }

    /// The last hidden states `[batch, len, width]` of `ids` `[batch, len]` (u32), with
    /// their token types and attention mask (1 for real tokens, 0 for padding).
    pub(crate) fn forward(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, len) = ids.dims2()?;
        let width = self.word.dim(1)?;
        if len > self.position.dim(0)? {
            candle_core::bail!(
                "{len} tokens exceed the model's {} positions",
                self.position.dim(0)?
            );
        }
        let pos = self.position.narrow(0, 0, len)?;
        let x = self
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, len, width))?
            .broadcast_add(&pos)?;
        let types = self
            .token_type
            .index_select(&types.flatten_all()?, 0)?
            .reshape((b, len, width))?;
        let mut x = self.norm.forward(&(x + types)?)?;
        // Padding gets a large negative score, so softmax gives it no weight; a batch
        // without padding (one text, or texts of one length) needs no bias at all.
        let mask = mask.to_dtype(DType::F32)?;
        let padded = mask.sum_all()?.to_scalar::<f32>()? < (b * len) as f32;
        let bias = padded
            .then(|| ((mask - 1.0)? * 1e9)?.reshape((b, 1, 1, len)))
            .transpose()?;
        for l in &self.layers {
            let a = self.attention(l, &x, bias.as_ref())?;
            x = l.attn_norm.forward(&(a + &x)?)?;
            let f = l.down.forward(&kernels::gelu(&l.up.forward(&x)?)?)?;
            x = l.ffn_norm.forward(&(f + &x)?)?;
        }
        Ok(x)
    }

    fn attention(&self, l: &Layer, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let (b, len, width) = x.dims3()?;
        let hd = width / self.heads;
        let qkv = l.qkv.forward(x)?;
        // [b, len, 3 × heads × hd] → three [b, heads, len, hd].
        let qkv = qkv.reshape((b, len, 3, self.heads, hd))?;
        let part = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = (part(0)? * (1.0 / (hd as f64).sqrt()))?;
        let (k, v) = (part(1)?, part(2)?);
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let p = kernels::softmax_last_dim(&scores)?;
        let y = p.matmul(&v)?.transpose(1, 2)?.reshape((b, len, width))?;
        l.out.forward(&y)
    }
}
