//! The approximate mode of the vector index: an HNSW graph (`hnsw_rs`) over a collection's
//! unit vectors, used for collections past a size threshold.
//!
//! The graph is not persisted: it is rebuilt from the stored vectors, off the request path,
//! the first time a large collection is searched (exact search answers until it is ready).
//! HNSW graphs cannot delete points, so a deleted or replaced document leaves a dead point
//! that searches skip; when dead points pass a fraction of the graph it is rebuilt.

use std::panic::{catch_unwind, AssertUnwindSafe};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;

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
    /// Rebuild the graph when this fraction of its points are deleted documents.
    pub max_dead_fraction: f64,
}

impl Default for HnswConfig {
    fn default() -> Self {
        Self {
            min_docs: 20_000,
            max_connections: 16,
            ef_construction: 100,
            ef_search: 64,
            max_dead_fraction: 0.25,
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

/// Cosine distance of unit vectors, clamped at 0: rounding can make the dot product of a
/// vector with itself exceed 1, and the graph code asserts distances are not negative.
struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// A built graph. Points are keyed by *slot*: a number given to each stored vector that,
/// unlike its row, does not change when other documents are deleted.
pub(crate) struct Graph {
    hnsw: Hnsw<'static, f32, UnitCosine>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Graph({} points)", self.points())
    }
}

/// The graph code asserts its invariants; a broken one must cost a query its shortcut
/// (the caller falls back to exact search), not crash the process.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::error!("HNSW {what} panicked; falling back to exact search");
            None
        }
    }
}

impl Graph {
    /// Build a graph over `(vector, slot)` pairs, inserting in parallel.
    pub(crate) fn build(cfg: &HnswConfig, points: &[(&[f32], usize)]) -> Option<Self> {
        let hnsw = Hnsw::new(
            cfg.max_connections,
            points.len().max(1),
            16,
            cfg.ef_construction,
            UnitCosine,
        );
        guarded("build", || hnsw.parallel_insert_slice(&points.to_vec()))?;
        Some(Self { hnsw })
    }

    /// Add one point.
    pub(crate) fn insert(&self, v: &[f32], slot: usize) -> bool {
        guarded("insert", || self.hnsw.insert_slice((v, slot))).is_some()
    }

    /// Points in the graph, dead ones included.
    pub(crate) fn points(&self) -> usize {
        self.hnsw.get_nb_point()
    }

    /// Up to `k` `(slot, cosine similarity)` pairs nearest to `q`, among slots for which
    /// `keep` is true, best first; `None` if the graph code failed.
    ///
    /// The graph is searched without a filter for `k` plus up to `dead` more points, and
    /// the dead ones are dropped afterwards. `hnsw_rs`'s filtered search gives up its
    /// early exit and walks most of the graph (7 ms instead of well under one at 100k
    /// points), so it is only the fallback, for when too many of the points found were
    /// dead to leave `k`.
    pub(crate) fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        dead: usize,
        keep: &(dyn Fn(&usize) -> bool + Sync),
    ) -> Option<Vec<(usize, f32)>> {
        let fetch = k + dead.min(ef.max(k));
        let found = guarded("search", || {
            self.hnsw.search_filter(q, fetch, ef.max(fetch), None)
        })?;
        let mut live: Vec<(usize, f32)> = found
            .into_iter()
            .filter(|n| keep(&n.d_id))
            .map(|n| (n.d_id, 1.0 - n.distance))
            .collect();
        if live.len() < k && dead > 0 {
            let found = guarded("search", || {
                self.hnsw.search_filter(q, k, ef.max(k), Some(&keep))
            })?;
            live = found
                .into_iter()
                .map(|n| (n.d_id, 1.0 - n.distance))
                .collect();
        }
        live.truncate(k);
        Some(live)
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

    #[test]
    fn finds_neighbours_and_respects_the_filter() {
        let rows = circle();
        let points: Vec<(&[f32], usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), i * 10))
            .collect();
        let g = Graph::build(&HnswConfig::default(), &points).unwrap();
        assert_eq!(g.points(), 200);
        let all = g.search(&rows[50], 3, 32, 0, &|_| true).unwrap();
        assert_eq!(all[0].0, 500);
        assert!((all[0].1 - 1.0).abs() < 1e-5);
        let odd = g.search(&rows[50], 2, 32, 100, &|s| s % 20 != 0).unwrap();
        let mut slots: Vec<usize> = odd.iter().map(|p| p.0).collect();
        slots.sort();
        assert_eq!(slots, [490, 510]);
    }

    #[test]
    fn too_many_dead_points_among_the_nearest_fall_back_to_the_filtered_walk() {
        let rows = circle();
        let points: Vec<(&[f32], usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), i))
            .collect();
        let g = Graph::build(&HnswConfig::default(), &points).unwrap();
        // Only slots from 100 on are alive, the query sits at slot 50: the nearest few
        // fetched without the filter are all dead.
        let far = g.search(&rows[50], 2, 32, 1, &|s| *s >= 100).unwrap();
        let slots: Vec<usize> = far.iter().map(|p| p.0).collect();
        // The walk is approximate and the parallel build is not deterministic: the two
        // found are alive and among the four nearest alive (100..=103), not always the
        // exact two (a run found [101, 102]).
        assert_eq!(slots.len(), 2, "{slots:?}");
        assert!(slots.iter().all(|s| (100..=103).contains(s)), "{slots:?}");
    }
}
