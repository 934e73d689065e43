//! Our own forward pass for GGUF llama-architecture models, on candle tensors.
//!
//! Why not candle-transformers' `quantized_llama`: its matmuls see activations as wide as
//! the model (576 for SmolLM2), and candle's tiled int8 kernels (AVX-VNNI / AVX512-VNNI)
//! only take inner dimensions that are a multiple of 256. Here every weight whose inner
//! dimension is not is stored zero-padded to the next multiple, and the activations are
//! padded to match, so those kernels apply: 4–7× faster matmuls on this machine kind for
//! a third more weight memory. The forward pass also keeps the weights shared and
//! immutable (each generation owns only its KV cache, preallocated to the length it
//! needs) and runs grouped-query attention without copying K and V per query head.

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, IndexOp, Result, Tensor};
use candle_nn::kv_cache::KvCache;

use crate::quant::{Linear, WeightPolicy};

#[derive(Debug)]
struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// The model's shape, from the GGUF metadata.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    eps: f32,
}

/// A loaded llama model. Immutable, so one copy serves concurrent generations.
#[derive(Debug)]
pub(crate) struct Llama {
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    dims: Dims,
    context: usize,
}

/// One generation's KV cache.
pub(crate) struct KvState {
    layers: Vec<KvCache>,
}

/// Prompt tokens per forward call.
const PREFILL_CHUNK: usize = 256;

/// Longest context we precompute rotary tables for (the model's own limit if lower).
const MAX_CONTEXT: usize = 32_768;

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    ct.metadata
        .get(key)
        .ok_or_else(|| candle_core::Error::Msg(format!("the GGUF has no {key}")))
}

fn md_usize(ct: &gguf_file::Content, key: &str) -> Result<usize> {
    Ok(md(ct, key)?.to_u32()? as usize)
}

impl Llama {
    /// Read the weights of a llama-architecture GGUF.
    pub(crate) fn load<R: std::io::Read + std::io::Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        policy: WeightPolicy,
    ) -> Result<Self> {
        let dev = Device::Cpu;
        let arch = md(ct, "general.architecture")?.to_string()?;
        if arch != "llama" {
            candle_core::bail!("only llama-architecture GGUF models are supported, not {arch}");
        }
        if ct
            .metadata
            .get("llama.expert_count")
            .and_then(|v| v.to_u32().ok())
            .is_some_and(|n| n > 1)
        {
            candle_core::bail!("mixture-of-experts llama models are not supported");
        }
        let n_head = md_usize(ct, "llama.attention.head_count")?;
        let n_kv_head = md_usize(ct, "llama.attention.head_count_kv")?;
        let n_embd = md_usize(ct, "llama.embedding_length")?;
        let n_layer = md_usize(ct, "llama.block_count")?;
        if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 || n_embd % n_head != 0 {
            candle_core::bail!("inconsistent head counts {n_head}/{n_kv_head} for width {n_embd}");
        }
        let head_dim = n_embd / n_head;
        let rope_dim = ct
            .metadata
            .get("llama.rope.dimension_count")
            .and_then(|v| v.to_u32().ok())
            .map_or(head_dim, |d| d as usize);
        if rope_dim != head_dim {
            candle_core::bail!(
                "partial rotary embeddings ({rope_dim} of {head_dim}) are not supported"
            );
        }
        let eps = md(ct, "llama.attention.layer_norm_rms_epsilon")?.to_f32()?;
        let base = ct
            .metadata
            .get("llama.rope.freq_base")
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(10_000.0);
        let context = ct
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .map_or(4096, |c| c as usize)
            .min(MAX_CONTEXT);
        let (cos, sin) = rotary_tables(head_dim, base, context)?;

        let mut tensor = |name: &str| ct.tensor(r, name, &dev);
        let embed_q = tensor("token_embd.weight")?;
        let embed = embed_q.dequantize(&dev)?;
        let norm = tensor("output_norm.weight")?.dequantize(&dev)?;
        // Many small models tie the output head to the embeddings.
        let output = if ct.tensor_infos.contains_key("output.weight") {
            tensor("output.weight")?
        } else {
            embed_q
        };
        let output = Linear::new(output, policy)?;
        let mut blocks = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let mut w = |part: &str| tensor(&format!("blk.{i}.{part}.weight"));
            let mut lin = |part: &str| Linear::new(w(part)?, policy);
            blocks.push(Block {
                q: lin("attn_q")?,
                k: lin("attn_k")?,
                v: lin("attn_v")?,
                o: lin("attn_output")?,
                gate: lin("ffn_gate")?,
                up: lin("ffn_up")?,
                down: lin("ffn_down")?,
                attn_norm: w("attn_norm")?.dequantize(&dev)?,
                ffn_norm: w("ffn_norm")?.dequantize(&dev)?,
            });
        }
        Ok(Self {
            embed,
            blocks,
            norm,
            output,
            cos,
            sin,
            dims: Dims {
                n_head,
                n_kv_head,
                head_dim,
                eps,
            },
            context,
        })
    }

    /// The longest sequence (prompt and answer) the model takes.
    pub(crate) fn context(&self) -> usize {
        self.context
    }

    /// A KV cache for a sequence of up to `capacity` tokens.
    pub(crate) fn state(&self, capacity: usize) -> KvState {
        let capacity = capacity.clamp(1, self.context);
        KvState {
            layers: (0..self.blocks.len())
                .map(|_| KvCache::new(2, capacity))
                .collect(),
        }
    }

    /// Feed `tokens` at positions `pos..`; the logits for the token after the last one.
    pub(crate) fn forward(
        &self,
        state: &mut KvState,
        tokens: &[u32],
        pos: usize,
    ) -> Result<Tensor> {
        let s = tokens.len();
        if s == 0 || pos + s > self.context {
            candle_core::bail!(
                "{} tokens at position {pos} exceed the context of {}",
                s,
                self.context
            );
        }
        // Long prompts go in slices: the attention scores of one slice are
        // heads × slice × context floats, which for a whole 8k prompt would be gigabytes.
        let mut logits = None;
        for (i, chunk) in tokens.chunks(PREFILL_CHUNK).enumerate() {
            logits = Some(self.forward_chunk(state, chunk, pos + i * PREFILL_CHUNK)?);
        }
        logits.ok_or_else(|| candle_core::Error::Msg("no tokens".into()))
    }

    fn forward_chunk(&self, state: &mut KvState, tokens: &[u32], pos: usize) -> Result<Tensor> {
        let dev = Device::Cpu;
        let s = tokens.len();
        let ids = Tensor::new(tokens, &dev)?;
        let mut x = self.embed.index_select(&ids, 0)?.unsqueeze(0)?;
        let mask = (s > 1).then(|| causal_mask(s, pos)).transpose()?;
        let cos = self.cos.narrow(0, pos, s)?;
        let sin = self.sin.narrow(0, pos, s)?;
        for (b, cache) in self.blocks.iter().zip(&mut state.layers) {
            let h = candle_nn::ops::rms_norm(&x, &b.attn_norm, self.dims.eps)?;
            let h = self.attention(b, cache, &h, mask.as_ref(), (&cos, &sin))?;
            x = (x + h)?;
            let h = candle_nn::ops::rms_norm(&x, &b.ffn_norm, self.dims.eps)?;
            let h = (candle_nn::ops::silu(&b.gate.forward(&h)?)? * b.up.forward(&h)?)?;
            x = (x + b.down.forward(&h)?)?;
        }
        // Only the last position's logits are needed.
        let last = x.i((.., s - 1..s, ..))?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.dims.eps)?;
        self.output.forward(&last)?.flatten_all()
    }

    fn attention(
        &self,
        b: &Block,
        cache: &mut KvCache,
        x: &Tensor,
        mask: Option<&Tensor>,
        (cos, sin): (&Tensor, &Tensor),
    ) -> Result<Tensor> {
        let Dims {
            n_head,
            n_kv_head,
            head_dim,
            ..
        } = self.dims;
        let s = x.dim(1)?;
        let heads = |t: Tensor, n: usize| -> Result<Tensor> {
            t.reshape((1, s, n, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = candle_nn::rotary_emb::rope_i(&heads(b.q.forward(x)?, n_head)?, cos, sin)?;
        let k = candle_nn::rotary_emb::rope_i(&heads(b.k.forward(x)?, n_kv_head)?, cos, sin)?;
        let v = heads(b.v.forward(x)?, n_kv_head)?;
        let (k, v) = cache.append(&k, &v)?;
        let kv_len = k.dim(2)?;
        // Query heads that share a KV head are consecutive: view them as one longer
        // sequence per KV head instead of repeating K and V.
        let rep = n_head / n_kv_head;
        let q =
            (q * (1.0 / (head_dim as f64).sqrt()))?.reshape((1, n_kv_head, rep * s, head_dim))?;
        let att = q.matmul(&k.t()?)?;
        let att = match mask {
            Some(m) => att
                .reshape((1, n_kv_head, rep, s, kv_len))?
                .broadcast_add(m)?
                .reshape((1, n_kv_head, rep * s, kv_len))?,
            None => att,
        };
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v.contiguous()?)?;
        let y = y
            .reshape((1, n_head, s, head_dim))?
            .transpose(1, 2)?
            .reshape((1, s, n_head * head_dim))?;
        b.o.forward(&y)
    }
}

/// `cos` and `sin` of every position × frequency, `[context, head_dim / 2]`.
fn rotary_tables(head_dim: usize, base: f32, context: usize) -> Result<(Tensor, Tensor)> {
    let dev = Device::Cpu;
    let inv: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let inv = Tensor::new(inv.as_slice(), &dev)?.reshape((1, head_dim / 2))?;
    let positions = Tensor::arange(0u32, context as u32, &dev)?
        .to_dtype(DType::F32)?
        .reshape((context, 1))?;
    let angles = positions.matmul(&inv)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Additive mask `[s, pos + s]`: query `i` (at position `pos + i`) sees keys up to itself.
fn causal_mask(s: usize, pos: usize) -> Result<Tensor> {
    let kv = pos + s;
    let m: Vec<f32> = (0..s)
        .flat_map(|i| (0..kv).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (s, kv), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ModelCache, SMOLLM2};
    use candle_transformers::models::quantized_llama::ModelWeights;

    const KEEP: WeightPolicy = WeightPolicy {
        requantize: false,
        pad: false,
        f32_prompts: false,
    };

    fn gguf() -> (gguf_file::Content, std::fs::File) {
        let dir = ModelCache::default()
            .ensure(&SMOLLM2)
            .expect("fetch SmolLM2");
        let mut f = std::fs::File::open(dir.join("model.gguf")).unwrap();
        (gguf_file::Content::read(&mut f).unwrap(), f)
    }

    fn ours(policy: WeightPolicy) -> Llama {
        let (ct, mut f) = gguf();
        Llama::load(&ct, &mut f, policy).unwrap()
    }

    /// Logits equal to 1e-3: on the stored weights every path runs the same kernels.
    fn assert_close(want: &Tensor, got: &Tensor, what: &str) {
        let diff = crate::quant::max_diff(want, got);
        assert!(diff < 1e-3, "{what}: logits differ by {diff}");
    }

    fn argmax(t: &Tensor) -> u32 {
        t.argmax(0).unwrap().to_scalar().unwrap()
    }

    fn prompt() -> Vec<u32> {
        let (ct, _) = gguf();
        let (tok, _) = crate::chat::tokenizer_from_gguf(&ct).unwrap();
        let ids = tok.encode("The capital of Germany is", false).unwrap();
        ids.get_ids().to_vec()
    }

    /// The forward pass is candle-transformers' llama arithmetic: on the stored weights the
    /// logits agree with its `quantized_llama` for the prompt and for decode steps after it.
    #[test]
    fn matches_candle_quantized_llama() {
        let prompt = prompt();
        let (ct, mut f) = gguf();
        let mut reference = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
        let model = ours(KEEP);
        let mut state = model.state(16);
        let input = Tensor::new(prompt.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let want = reference.forward(&input, 0).unwrap().squeeze(0).unwrap();
        let got = model.forward(&mut state, &prompt, 0).unwrap();
        assert_close(&want, &got, "prompt");
        let mut next = argmax(&got);
        for pos in prompt.len()..prompt.len() + 2 {
            let step = Tensor::new(&[next], &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let want = reference.forward(&step, pos).unwrap().squeeze(0).unwrap();
            let got = model.forward(&mut state, &[next], pos).unwrap();
            assert_close(&want, &got, &format!("step {pos}"));
            next = argmax(&got);
        }
    }

    /// Prompt processing in one call and token by token give the same logits, so the
    /// causal mask and the KV cache agree.
    #[test]
    fn batched_prompt_equals_incremental() {
        let prompt = prompt();
        let model = ours(KEEP);
        let whole = model.forward(&mut model.state(8), &prompt, 0).unwrap();
        let mut state = model.state(8);
        let mut last = None;
        for (pos, t) in prompt.iter().enumerate() {
            last = Some(model.forward(&mut state, &[*t], pos).unwrap());
        }
        assert_close(&whole, &last.unwrap(), "token by token");
    }

    const PLAIN: WeightPolicy = WeightPolicy {
        requantize: true,
        pad: false,
        f32_prompts: false,
    };

    /// Padding the inner dimensions for the tiled kernels, or multiplying prompts by
    /// dequantized weights, changes no greedy choice.
    #[test]
    fn padded_weights_and_f32_prompts_pick_the_same_tokens() {
        for other in [
            WeightPolicy { pad: true, ..PLAIN },
            WeightPolicy {
                f32_prompts: true,
                ..PLAIN
            },
        ] {
            same_greedy_tokens(PLAIN, other);
        }
    }

    fn same_greedy_tokens(one: WeightPolicy, other: WeightPolicy) {
        let prompt = prompt();
        let (first, second) = (ours(one), ours(other));
        let (mut a, mut b) = (first.state(16), second.state(16));
        let (mut la, mut lb) = (
            first.forward(&mut a, &prompt, 0).unwrap(),
            second.forward(&mut b, &prompt, 0).unwrap(),
        );
        for pos in prompt.len()..prompt.len() + 4 {
            let (ta, tb) = (argmax(&la), argmax(&lb));
            assert_eq!(ta, tb, "position {pos}");
            la = first.forward(&mut a, &[ta], pos).unwrap();
            lb = second.forward(&mut b, &[tb], pos).unwrap();
        }
    }

    /// A prompt longer than one prefill slice gives the logits of feeding it in two calls.
    #[test]
    fn long_prompts_are_processed_in_slices() {
        let model = ours(KEEP);
        let long: Vec<u32> = prompt()
            .into_iter()
            .cycle()
            .take(PREFILL_CHUNK + 40)
            .collect();
        let whole = model
            .forward(&mut model.state(long.len()), &long, 0)
            .unwrap();
        let mut state = model.state(long.len());
        model.forward(&mut state, &long[..100], 0).unwrap();
        let split = model.forward(&mut state, &long[100..], 100).unwrap();
        assert_close(&whole, &split, "split at 100");
    }

    /// The weights as run by default (Q8_0, padded where the tiled kernels exist) stay close
    /// to the stored Q4_1 ones, teacher-forced over a real paragraph. Measured here: 55 of
    /// 61 top-1 choices agree, mean |Δlogit| 0.46 (0.35 and 56 without padding). The tiled
    /// kernels quantize activations in blocks of 256 instead of 32, hence the extra.
    #[test]
    fn default_weights_stay_close_to_the_stored_ones() {
        let (ct, _) = gguf();
        let (tok, _) = crate::chat::tokenizer_from_gguf(&ct).unwrap();
        let text = "The Rhine is a major European river. It begins in the Swiss Alps, flows \
            through Germany and the Netherlands, and empties into the North Sea. Cities such as \
            Basel, Strasbourg, Cologne and Rotterdam lie on its banks, and it has been an \
            important trade route since Roman times.";
        let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
        let (stored, fast) = (ours(KEEP), ours(WeightPolicy::for_this_cpu(false)));
        let (mut a, mut b) = (stored.state(ids.len()), fast.state(ids.len()));
        let (mut agree, mut total_diff) = (0, 0.0);
        for (pos, t) in ids.iter().enumerate() {
            let want = stored.forward(&mut a, &[*t], pos).unwrap();
            let got = fast.forward(&mut b, &[*t], pos).unwrap();
            agree += usize::from(argmax(&want) == argmax(&got));
            let d = (&want - &got).unwrap().abs().unwrap().mean_all().unwrap();
            total_diff += d.to_scalar::<f32>().unwrap();
        }
        let mean = total_diff / ids.len() as f32;
        assert!(
            agree * 100 >= ids.len() * 85,
            "{agree} of {} agree",
            ids.len()
        );
        assert!(mean < 0.6, "mean |Δlogit| {mean}");
    }

    #[test]
    fn sequences_past_the_context_are_refused() {
        let model = ours(KEEP);
        let mut state = model.state(4);
        let e = model
            .forward(&mut state, &[1], model.context())
            .unwrap_err();
        assert!(e.to_string().contains("exceed the context"), "{e}");
        assert!(model.forward(&mut state, &[], 0).is_err());
    }

    #[test]
    fn causal_mask_hides_the_future() {
        let m: Vec<Vec<f32>> = causal_mask(2, 1).unwrap().to_vec2().unwrap();
        assert_eq!(m[0], [0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], [0.0, 0.0, 0.0]);
    }
}
