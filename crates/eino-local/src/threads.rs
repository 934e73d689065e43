//! Thread settings for candle.

use std::sync::Once;

/// Options shared by the local models.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Compute threads; `None`: 1 on machines with ≤ 2 cores (spinning thread pools on a
    /// small shared machine can be 10× slower), else half the cores.
    pub threads: Option<usize>,
    /// Keep a GGUF chat model's weights as stored instead of requantizing Q4_0/Q4_1 to
    /// Q8_0 at load. Requantizing costs about a second and ~140 MB more memory but uses
    /// candle's SIMD Q8_0 kernels (stock Q4_1 has none on x86): about twice as fast.
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
