//! Thread settings for candle.

use std::sync::Once;

/// Options shared by the local models.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Compute threads; `None`: 1 on machines with ≤ 2 cores (spinning thread pools on a
    /// small shared machine can be 10× slower), else half the cores.
    pub threads: Option<usize>,
    /// Keep a GGUF chat model's weights as stored. By default Q4_0/Q4_1 weights are
    /// requantized to Q8_0 at load (candle has SIMD Q8_0 kernels, none for Q4_1 on x86),
    /// and on CPUs with AVX-VNNI or AVX512-VNNI inner dimensions are zero-padded to a
    /// multiple of 256 so candle's tiled int8 kernels apply. That is about 4× faster prompt
    /// processing and 1.5× faster generation for ~1 s more load time and ~210 MB more
    /// memory on SmolLM2-135M. On CPUs without those, prompts (16 tokens or more) are
    /// multiplied by the weights dequantized to f32 for the call, 2–4× faster there than
    /// candle's Q8_0 matmul. The VNNI CPUs run the BERT embedder's dense layers as Q8_0
    /// instead of its stored f32 (vectors within a cosine of ~0.999 of the f32 model's,
    /// several times faster); this flag keeps f32 there too.
    pub keep_quantization: bool,
}

static INIT: Once = Once::new();

/// candle (and its matrix kernels) read the thread count from the environment once, before
/// the first tensor operation; set it here unless the user already did.
pub(crate) fn init_threads(opts: &LocalOptions) {
    INIT.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_some() {
            return;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n = opts
            .threads
            .unwrap_or(if cores <= 2 { 1 } else { cores / 2 })
            .max(1);
        // Runs once, before any model thread exists.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    });
}
