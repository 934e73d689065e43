//! Int8 weights for candle's tiled kernels, shared by our forward passes (the chat model's
//! llama and the BERT embedder).
//!
//! candle's tiled int8 kernels (AVX-VNNI / AVX512-VNNI) only take inner dimensions that
//! are a multiple of 256: a weight whose inner dimension is not is stored zero-padded to
//! the next multiple, and its activations are padded to match, which on this machine kind
//! makes the matmuls 4–7× faster for a third more weight memory. Where those kernels are
//! missing (AVX2 only), candle's Q8_0 matmul computes one dot product per output: right
//! for one row (generation), 4× slower than its f32 matmul for many, so many-row inputs go
//! through the weight dequantized for the call ([`WeightPolicy::f32_prompts`]).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Result, Tensor, D};

/// How weights are stored after loading.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WeightPolicy {
    /// Rewrite Q4_0/Q4_1 as Q8_0 (candle has no SIMD Q4_1 kernel on x86), and f32 weights
    /// as Q8_0 ([`Linear::from_f32`]).
    pub(crate) requantize: bool,
    /// Zero-pad inner dimensions to a multiple of 256 so the tiled kernels apply.
    pub(crate) pad: bool,
    /// Multiply inputs of [`F32_FROM_ROWS`] rows or more (a prompt) by the weight
    /// dequantized to f32 for the call, where candle has no tiled int8 kernels: its
    /// one-dot-product-per-output Q8_0 matmul is about 4× slower than its f32 matmul on
    /// many rows, while for one row (generation) it reads a quarter of the bytes.
    pub(crate) f32_prompts: bool,
}

/// Rows from which a call dequantizes ([`WeightPolicy::f32_prompts`]): dequantizing costs
/// about as much as a few rows of the Q8_0 matmul saves.
const F32_FROM_ROWS: usize = 16;

impl WeightPolicy {
    /// Requantize; pad where this CPU has the tiled kernels, else multiply prompts in f32;
    /// `keep` leaves the weights exactly as stored.
    pub(crate) fn for_this_cpu(keep: bool) -> Self {
        let tiled = tiled_int8_kernels();
        Self {
            requantize: !keep,
            pad: !keep && tiled,
            f32_prompts: !keep && !tiled,
        }
    }

    /// For weights stored in f32 (the BERT embedder's): int8 only where this CPU has the
    /// tiled kernels. Without them candle's Q8_0 matmul runs one dot product per output
    /// and, on BERT's many-row inputs, is about 5× slower than its f32 matmul
    /// (docs/benchmarks.md), so the weights stay f32.
    pub(crate) fn for_f32_weights(keep: bool) -> Self {
        let int8 = !keep && tiled_int8_kernels();
        Self {
            requantize: int8,
            pad: int8,
            f32_prompts: false,
        }
    }
}

/// Whether candle will run Q8_0 matmuls through its tiled VNNI kernels (it does not on
/// plain AVX2, where padding would only cost time).
pub(crate) fn tiled_int8_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // candle honours this override and then uses its AVX2 kernels.
        if std::env::var("MISTRALRS_FORCE_AVX2").as_deref() == Ok("1") {
            return false;
        }
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
            || (is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The tiled kernels' block of the inner dimension.
const TILE_K: usize = 256;

/// Zero columns to append to an int8 weight `[n, k]` (whole blocks of 32) so the tiled
/// kernels take it: none unless `policy` pads, the kernels' 16-row tiles fit, and `k` is
/// not already a multiple of their block.
fn tile_pad(n: usize, k: usize, policy: WeightPolicy) -> usize {
    if policy.pad && n.is_multiple_of(16) && !k.is_multiple_of(TILE_K) {
        k.next_multiple_of(TILE_K) - k
    } else {
        0
    }
}

/// A weight matrix `[out, in]` and the zero columns appended to its input side.
#[derive(Debug)]
pub(crate) struct Linear {
    w: QMatMul,
    pad: usize,
    /// [`WeightPolicy::f32_prompts`].
    f32_prompts: bool,
}

impl Linear {
    pub(crate) fn new(q: QTensor, policy: WeightPolicy) -> Result<Self> {
        let dev = Device::Cpu;
        let (n, k) = q.shape().dims2()?;
        let int8 = matches!(
            q.dtype(),
            GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q8_0
        );
        let slow = matches!(q.dtype(), GgmlDType::Q4_0 | GgmlDType::Q4_1);
        let blocks_fit = k % 32 == 0;
        let pad = if int8 && blocks_fit {
            tile_pad(n, k, policy)
        } else {
            0
        };
        let q = if pad > 0 || (policy.requantize && slow && blocks_fit) {
            // Q8_0 → f32 → Q8_0 is exact: each block's scale and values come back the same.
            let w = q.dequantize(&dev)?.pad_with_zeros(1, 0, pad)?;
            QTensor::quantize(&w, GgmlDType::Q8_0)?
        } else {
            q
        };
        Ok(Self {
            w: QMatMul::from_qtensor(q)?,
            pad,
            f32_prompts: policy.f32_prompts,
        })
    }

    /// An f32 weight `[out, in]` as Q8_0 (its inner dimension must be a multiple of 32),
    /// padded as `policy` says; kept in f32 (candle's f32 matmul) unless `policy`
    /// requantizes.
    pub(crate) fn from_f32(w: &Tensor, policy: WeightPolicy) -> Result<Self> {
        if !policy.requantize {
            return Ok(Self {
                w: QMatMul::Tensor(w.clone()),
                pad: 0,
                f32_prompts: false,
            });
        }
        let (n, k) = w.dims2()?;
        // Padded before quantizing, so the weight is quantized once.
        let pad = tile_pad(n, k, policy);
        let q = QTensor::quantize(&w.pad_with_zeros(1, 0, pad)?, GgmlDType::Q8_0)?;
        Ok(Self {
            w: QMatMul::from_qtensor(q)?,
            pad,
            f32_prompts: policy.f32_prompts,
        })
    }

    /// `x · wᵀ` over the last dimension of `x`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.pad > 0 {
            return self.w.forward(&x.pad_with_zeros(D::Minus1, 0, self.pad)?);
        }
        if let (true, QMatMul::QTensor(q)) = (self.f32_prompts, &self.w) {
            let rows = x.elem_count() / x.dim(D::Minus1)?.max(1);
            if rows >= F32_FROM_ROWS {
                // A transient f32 copy, one layer's weight at a time (a few MB).
                return QMatMul::Tensor(q.dequantize(&Device::Cpu)?).forward(x);
            }
        }
        self.w.forward(x)
    }
}

/// The largest absolute difference between two tensors of one shape (for tests).
#[cfg(test)]
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1] with some spread of magnitudes.
    fn values(rows: usize, cols: usize, seed: f32) -> Tensor {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| ((i as f32 * 0.37 + seed).sin() * (1.0 + (i % 7) as f32)) / 7.0)
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    /// A prompt's rows go through the dequantized weight: the exact product with the Q8_0
    /// weight, where the int8 path also rounds the activations; one row stays int8.
    #[test]
    fn prompts_are_multiplied_in_f32_and_single_rows_in_int8() {
        let int8 = WeightPolicy {
            requantize: true,
            pad: false,
            f32_prompts: false,
        };
        let f32_prompts = WeightPolicy {
            f32_prompts: true,
            ..int8
        };
        let w = values(64, 128, 0.5);
        let (a, b) = (
            Linear::from_f32(&w, int8).unwrap(),
            Linear::from_f32(&w, f32_prompts).unwrap(),
        );
        let QMatMul::QTensor(q) = &a.w else {
            panic!("the weight is not int8")
        };
        let exact_w = q.dequantize(&Device::Cpu).unwrap();
        let x = values(F32_FROM_ROWS * 2, 128, 1.5);
        let exact = x.matmul(&exact_w.t().unwrap()).unwrap();
        let (ya, yb) = (a.forward(&x).unwrap(), b.forward(&x).unwrap());
        assert!(max_diff(&yb, &exact) < 1e-4, "{}", max_diff(&yb, &exact));
        let rounded = max_diff(&ya, &exact);
        assert!(rounded > 1e-4 && rounded < 0.1, "{rounded}");
        let one = x.narrow(0, 0, 1).unwrap();
        let (oa, ob) = (a.forward(&one).unwrap(), b.forward(&one).unwrap());
        assert_eq!(max_diff(&oa, &ob), 0.0, "one row is not multiplied in int8");
    }
}
