//! The approximate mode of the vector index: an HNSW graph (USearch) over a collection's
//! unit vectors, used for collections past a size threshold.
//!
//! The graph holds its own copy of each vector, by default quantized to int8 (a quarter of
//! the f32 row's memory, and a quarter of the bytes each step of a walk reads); the index
//! keeps the f32 rows for exact search anyway, so the graph's candidates are re-scored
//! exactly before they are returned. The graph is not persisted: it is rebuilt from the
//! stored vectors, off the request path, the first time a large collection is searched
//! (exact search answers until it is ready). A deleted or replaced document's point is
//! removed from the graph at once; its node stays as a waypoint until a later insert
//! reuses it, and when such nodes pass a fraction of the graph it is rebuilt.

use std::sync::atomic::{AtomicUsize, Ordering};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// How the graph stores its copy of each vector; see [`HnswConfig::quantization`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GraphQuantization {
    /// One byte per component (384 bytes for MiniLM); candidates are re-scored exactly.
    #[default]
    Int8,
    /// Half-precision floats (two bytes per component); candidates are re-scored exactly.
    Float16,
    /// Full precision (four bytes per component, as the index's own rows).
    Float32,
}

impl GraphQuantization {
    fn scalar(self) -> ScalarKind {
        match self {
            Self::Int8 => ScalarKind::I8,
            Self::Float16 => ScalarKind::F16,
            Self::Float32 => ScalarKind::F32,
        }
    }

    /// How many candidates the graph is asked for per result wanted: quantized distances
    /// misorder near neighbours whose similarities differ in the third decimal, so twice
    /// as many are fetched and re-scored with the exact vectors (on the synthetic 100k
    /// set, int8 alone finds 92 % of the true top 10, int8 with twice the candidates
    /// re-scored 99.9 %).
    pub(crate) fn candidates_per_result(self) -> usize {
        match self {
            Self::Float32 => 1,
            Self::Int8 | Self::Float16 => 2,
        }
    }
}

/// Settings of the approximate (HNSW) mode; see [`VectorIndex::with_hnsw`](super::VectorIndex::with_hnsw).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HnswConfig {
    /// Collections with at least this many documents are searched through the graph.
    pub min_docs: usize,
    /// Neighbours kept per point and layer (`M`; 4–64, more is better recall and more memory).
    pub max_connections: usize,
    /// Candidates explored while inserting (higher builds slower, finds better neighbours).
    pub ef_construction: usize,
    /// Candidates explored per query (at least `k`; higher is better recall, slower).
    pub ef_search: usize,
    /// Rebuild the graph when this fraction of its nodes are deleted documents not yet
    /// replaced by new ones.
    pub max_dead_fraction: f64,
    /// How the graph stores vectors (int8 by default).
    pub quantization: GraphQuantization,
}

impl Default for HnswConfig {
    fn default() -> Self {
        Self {
            min_docs: 20_000,
            max_connections: 16,
            ef_construction: 100,
            ef_search: 64,
            max_dead_fraction: 0.25,
            quantization: GraphQuantization::default(),
        }
    }
}

impl HnswConfig {
    /// Use the graph from `min_docs` documents on.
    pub fn with_min_docs(mut self, min_docs: usize) -> Self {
        self.min_docs = min_docs;
        self
    }

    /// Set `ef_search`.
    pub fn with_ef_search(mut self, ef_search: usize) -> Self {
        self.ef_search = ef_search;
        self
    }

    /// Set `max_connections` and `ef_construction`.
    pub fn with_construction(mut self, max_connections: usize, ef_construction: usize) -> Self {
        self.max_connections = max_connections;
        self.ef_construction = ef_construction;
        self
    }

    /// Set how the graph stores vectors.
    pub fn with_quantization(mut self, quantization: GraphQuantization) -> Self {
        self.quantization = quantization;
        self
    }

    pub(crate) fn check(&self) -> eino::Result<()> {
        let bad = |why: &str| Err(eino::Error::invalid_input(format!("HNSW settings: {why}")));
        if !(2..=255).contains(&self.max_connections) {
            return bad("max_connections must be between 2 and 255");
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return bad("ef_construction and ef_search must be positive");
        }
        if !(0.0..=1.0).contains(&self.max_dead_fraction) {
            return bad("max_dead_fraction must be between 0 and 1");
        }
        Ok(())
    }
}

/// The dot product, compiled for the best instruction set this CPU has (AVX2 and FMA
/// through pulp's dispatch; the baseline build has SSE2's four lanes): exact search and
/// every graph step spend their time here.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    static ARCH: std::sync::LazyLock<pulp::Arch> = std::sync::LazyLock::new(pulp::Arch::new);
    ARCH.dispatch(Dot(a, b))
}

struct Dot<'a>(&'a [f32], &'a [f32]);

impl pulp::WithSimd for Dot<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f32 {
        dot_lanes(self.0, self.1)
    }
}

/// The dot product in sixteen independent lanes, so the compiler can vectorise it (a
/// plain `sum()` is a serial chain of float adds).
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Per-search working memory (visited set, candidate heaps) the graph keeps: this many
/// searches and inserts can run at once. Searches run under the index's read lock from any
/// number of threads, but only those on a core make progress, so a few per core suffice;
/// one that finds none free fails and its query is answered exactly.
fn contexts() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 8).max(64)
}

/// The graph code's errors (out of memory, no free search context) as internal errors:
/// the index answers exactly instead, and logs them.
fn failed<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> eino::Error {
    move |e| eino::Error::internal(format!("HNSW {what} failed: {e}"))
}

/// A built graph. Points are keyed by *slot*: a number given to each stored vector that,
/// unlike its row, does not change when other documents are deleted.
pub(crate) struct Graph {
    index: Index,
    quantization: GraphQuantization,
    /// Removed points whose nodes no insert has reused yet (USearch reuses them first).
    vacant: AtomicUsize,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Graph({} points)", self.points())
    }
}

impl Graph {
    /// Build a graph of `dim`-dimensional unit vectors over `(vector, slot)` pairs,
    /// inserting from one thread per core.
    pub(crate) fn build(
        cfg: &HnswConfig,
        dim: usize,
        points: &[(&[f32], usize)],
    ) -> eino::Result<Self> {
        let options = IndexOptions {
            dimensions: dim,
            // Unit vectors: the inner product is the cosine, without USearch's norms.
            metric: MetricKind::IP,
            quantization: cfg.quantization.scalar(),
            connectivity: cfg.max_connections,
            expansion_add: cfg.ef_construction,
            expansion_search: cfg.ef_search,
            multi: false,
        };
        let index = Index::new(&options).map_err(failed("create"))?;
        let graph = Self {
            index,
            quantization: cfg.quantization,
            vacant: AtomicUsize::new(0),
        };
        graph.reserve(points.len().max(1))?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = points.len().div_ceil(workers).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = points
                .chunks(per)
                .map(|part| {
                    let index = &graph.index;
                    s.spawn(move || {
                        part.iter()
                            .try_for_each(|(v, slot)| index.add(*slot as u64, v))
                            .map_err(failed("insert"))
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(failed("insert")("its thread panicked")))
            })
        })?;
        Ok(graph)
    }

    fn reserve(&self, capacity: usize) -> eino::Result<()> {
        self.index
            .reserve_capacity_and_threads(capacity, contexts())
            .map_err(failed("reserve"))
    }

    /// Add one point, growing the graph's capacity when it is full. Inserts and removes
    /// are serialized by the caller (the index's write lock); searches may run beside
    /// neither.
    pub(crate) fn insert(&self, v: &[f32], slot: usize) -> eino::Result<()> {
        let vacant = self.vacant.load(Ordering::Relaxed);
        if vacant == 0 && self.index.size() >= self.index.capacity() {
            self.reserve((self.index.capacity() * 2).max(64))?;
        }
        self.index.add(slot as u64, v).map_err(failed("insert"))?;
        if vacant > 0 {
            self.vacant.store(vacant - 1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Remove one point: searches no longer return it.
    pub(crate) fn remove(&self, slot: usize) -> eino::Result<()> {
        let removed = self.index.remove(slot as u64).map_err(failed("remove"))?;
        self.vacant.fetch_add(removed, Ordering::Relaxed);
        Ok(())
    }

    /// Nodes in the graph: live points and removed ones not yet reused.
    pub(crate) fn points(&self) -> usize {
        self.index.size() + self.vacant.load(Ordering::Relaxed)
    }

    /// Bytes the graph holds: nodes, links and its copies of the vectors.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }

    /// Nodes of removed points not yet reused.
    pub(crate) fn vacant(&self) -> usize {
        self.vacant.load(Ordering::Relaxed)
    }

    /// The slots of up to `k` candidates nearest to `q` (enough to re-score: see
    /// [`GraphQuantization::candidates_per_result`]), nearest first.
    pub(crate) fn candidates(&self, q: &[f32], k: usize) -> eino::Result<Vec<usize>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let wanted = k * self.quantization.candidates_per_result();
        let found = self.index.search(q, wanted).map_err(failed("search"))?;
        Ok(found.keys.into_iter().map(|key| key as usize).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_naive_sum() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(HnswConfig::default().check().is_ok());
        let bad = HnswConfig::default().with_construction(300, 100);
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("max_connections"));
        assert!(HnswConfig::default().with_ef_search(0).check().is_err());
    }

    /// 200 unit vectors along most of a circle, 0.03 radians apart.
    fn circle() -> Vec<Vec<f32>> {
        (0..200)
            .map(|i| {
                let a = i as f32 * 0.03;
                vec![a.cos(), a.sin()]
            })
            .collect()
    }

    fn graph(cfg: &HnswConfig) -> (Graph, Vec<Vec<f32>>) {
        let rows = circle();
        let points: Vec<(&[f32], usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), i * 10))
            .collect();
        (Graph::build(cfg, 2, &points).unwrap(), rows)
    }

    #[test]
    fn finds_neighbours_in_every_quantization() {
        for q in [
            GraphQuantization::Int8,
            GraphQuantization::Float16,
            GraphQuantization::Float32,
        ] {
            let (g, rows) = graph(&HnswConfig::default().with_quantization(q));
            assert_eq!(g.points(), 200);
            let found = g.candidates(&rows[50], 3).unwrap();
            assert_eq!(found.len(), 3 * q.candidates_per_result(), "{q:?}");
            // The nearest three (the point itself and its two neighbours) are among the
            // candidates whatever the rounding.
            for slot in [490, 500, 510] {
                assert!(found.contains(&slot), "{q:?}: {found:?}");
            }
        }
    }

    #[test]
    fn removed_points_are_never_found_and_their_nodes_are_reused() {
        let (g, rows) = graph(&HnswConfig::default().with_quantization(GraphQuantization::Float32));
        g.remove(500).unwrap();
        g.remove(510).unwrap();
        assert_eq!((g.points(), g.vacant()), (200, 2));
        let found = g.candidates(&rows[50], 2).unwrap();
        // The nearest live one first, then one of the two tied 0.06 radians away.
        assert_eq!(found[0], 490, "{found:?}");
        assert!(found[1] == 480 || found[1] == 520, "{found:?}");
        // A new point takes a removed one's node; the graph does not grow.
        g.insert(&rows[51], 5000).unwrap();
        assert_eq!((g.points(), g.vacant()), (200, 1));
        assert_eq!(g.candidates(&rows[51], 1).unwrap(), [5000]);
        // Removing what is not there changes nothing.
        g.remove(123_456).unwrap();
        assert_eq!(g.vacant(), 1);
    }

    #[test]
    fn inserts_past_the_capacity_grow_the_graph() {
        let cfg = HnswConfig::default().with_quantization(GraphQuantization::Float32);
        let g = Graph::build(&cfg, 2, &[(&[1.0, 0.0], 0)]).unwrap();
        for (i, v) in circle().iter().enumerate() {
            g.insert(v, i + 1).unwrap();
        }
        assert_eq!(g.points(), 201);
        assert_eq!(g.candidates(&circle()[100], 1).unwrap(), [101]);
    }
}
