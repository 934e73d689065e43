//! Element-wise kernels that candle runs one scalar libm call at a time: GELU (erf) and the
//! softmax's exp were a fifth of the BERT embedder's time on 1000-character chunks. Here
//! they are polynomial approximations the compiler vectorizes (for AVX2 and FMA when the
//! CPU has them), as candle custom ops on contiguous f32 tensors.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// `erf(x)` within 1e-6: Eigen's rational approximation (odd polynomial of degree 13 over
/// one of degree 8 in x²), clamped at ±4 where erf is ±1 in f32.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for c in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_600_1e-3,
        -1.609_603_3e-2,
    ] {
        p = p * x2 + c;
    }
    let mut q = -1.456_607_2e-5_f32;
    for c in [-2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2] {
        q = q * x2 + c;
    }
    x * p / q
}

/// `e^x` within a relative 1e-6 + |x|·1e-7 (the f32 product `x·log₂e` rounds): `2^n · 2^f`
/// with `n` the nearest integer to `x·log₂e` and `2^f` (|f| ≤ ½) a degree-6 polynomial; 0
/// below about e^-87, where f32 runs out of exponent.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let t = (x * std::f32::consts::LOG2_E).clamp(-127.0, 127.0);
    // Adding 1.5 · 2^23 rounds to the nearest integer n and leaves n in the low mantissa
    // bits, so 2^n is built with integer operations (a float-to-int cast would saturate,
    // which the compiler cannot vectorize).
    let k = t + 12_582_912.0;
    let f = t - (k - 12_582_912.0);
    let mut p = 1.540_353e-4_f32;
    for c in [
        1.333_355_8e-3,
        9.618_129e-3,
        5.550_411e-2,
        0.240_226_5,
        std::f32::consts::LN_2,
        1.0,
    ] {
        p = p * f + c;
    }
    let scale = f32::from_bits(k.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    if t <= -126.0 {
        0.0
    } else {
        p * scale
    }
}

/// Lanes of the reductions below: separate accumulators let the compiler vectorize a sum
/// or a maximum (it may not reorder one float accumulator).
const LANES: usize = 16;

#[inline(always)]
fn reduce(xs: &[f32], start: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [start; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = op(*a, x);
        }
    }
    acc.into_iter().chain(rest.iter().copied()).fold(start, op)
}

#[inline(always)]
fn gelu_rows(src: &[f32], dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn softmax_rows(src: &[f32], dst: &mut [f32], width: usize) {
    for (row, out) in src.chunks_exact(width).zip(dst.chunks_exact_mut(width)) {
        let max = reduce(row, f32::NEG_INFINITY, f32::max);
        for (o, &x) in out.iter_mut().zip(row) {
            *o = exp(x - max);
        }
        let inv = 1.0 / reduce(out, 0.0, |a, b| a + b);
        out.iter_mut().for_each(|o| *o *= inv);
    }
}

/// One op over whole rows, as pulp's dispatch takes it.
struct Rows<'a> {
    op: Op,
    src: &'a [f32],
    dst: &'a mut [f32],
    width: usize,
}

impl pulp::WithSimd for Rows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        match self.op {
            Op::Gelu => gelu_rows(self.src, self.dst),
            Op::SoftmaxLastDim => softmax_rows(self.src, self.dst, self.width),
        }
    }
}

/// Which element-wise op.
#[derive(Debug, Clone, Copy)]
enum Op {
    Gelu,
    SoftmaxLastDim,
}

impl CustomOp1 for Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Gelu => "fast-gelu",
            Op::SoftmaxLastDim => "fast-softmax-last-dim",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{} needs a contiguous tensor", self.name());
        };
        let src = &storage.as_slice::<f32>()?[start..end];
        let mut dst = vec![0f32; src.len()];
        let width = layout.dims().last().copied().unwrap_or(1).max(1);
        // pulp runs `with_simd` inside a function compiled for the best instruction set
        // this CPU has (AVX2+FMA, AVX-512), so the loops inlined there vectorize for it.
        pulp::Arch::new().dispatch(Rows {
            op: *self,
            src,
            dst: &mut dst,
            width,
        });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// GELU with the exact (erf) definition, within 1e-6 of it.
pub(crate) fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Op::Gelu)
}

/// Softmax over the last dimension.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Op::SoftmaxLastDim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// erf by its series (converges for |x| ≤ 4 in f64), as the reference.
    fn erf_ref(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_and_exp_are_within_their_bounds() {
        for i in -4000..=4000 {
            let x = i as f32 / 1000.0;
            let want = erf_ref(f64::from(x));
            assert!((f64::from(erf(x)) - want).abs() < 1e-6, "erf({x})");
        }
        // Past the clamp it stays at ±1.
        assert!((erf(9.0) - 1.0).abs() < 1e-6 && (erf(-9.0) + 1.0).abs() < 1e-6);
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            // Scaling x by log2(e) in f32 costs about |x| · 1e-7 of relative precision.
            let bound = 1e-6 + 1e-7 * f64::from(x.abs());
            assert!(
                (got - want).abs() <= bound * want,
                "exp({x}): {got} vs {want}"
            );
        }
        assert_eq!(exp(-1e9), 0.0);
    }

    #[test]
    fn ops_match_candles_own() {
        let dev = Device::Cpu;
        let x = Tensor::arange(-300f32, 300., &dev)
            .unwrap()
            .affine(0.013, 0.1)
            .unwrap()
            .reshape((2, 3, 100))
            .unwrap();
        let diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert!(diff(&gelu(&x).unwrap(), &x.gelu_erf().unwrap()) < 1e-5);
        let want = candle_nn::ops::softmax_last_dim(&x).unwrap();
        assert!(diff(&softmax_last_dim(&x).unwrap(), &want) < 1e-6);
        // A transposed (strided) input is made contiguous first.
        let t = x.transpose(1, 2).unwrap();
        let want = candle_nn::ops::softmax_last_dim(&t.contiguous().unwrap()).unwrap();
        assert!(diff(&softmax_last_dim(&t).unwrap(), &want) < 1e-6);
    }
}
