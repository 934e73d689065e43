//! Hybrid retrieval: a vector retriever and a keyword retriever queried concurrently and
//! fused, still answering (and saying so) when one side fails — the HybridRetriever of the
//! production guide (seed 000).

use std::sync::Arc;

use eino::component::{RetrieveOptions, Retriever};
use eino::flow::retriever::reciprocal_rank_fusion;
use eino::schema::Document;
use eino::{Error, Result};
use futures_util::future::BoxFuture;

/// How the two result lists become one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal-rank fusion with this k (60 is the usual choice): robust to score scales.
    Rrf(f64),
    /// Weighted sum of min-max-normalised scores: `vector_weight · v + (1 − vector_weight) · k`.
    Weighted {
        /// Weight of the vector side, 0..=1.
        vector_weight: f64,
    },
}

impl From<Fusion> for eino::flow::retriever::FusionFn {
    /// The same fusion over any number of lists, e.g. for a multi-query retriever (with
    /// `Weighted`, the first list is the vector side and the others are summed as the
    /// keyword side).
    fn from(fusion: Fusion) -> Self {
        Arc::new(move |mut lists: Vec<Vec<Document>>| {
            if let Fusion::Rrf(k) = fusion {
                return Ok(reciprocal_rank_fusion(lists, k));
            }
            let vector = if lists.is_empty() {
                Vec::new()
            } else {
                lists.remove(0)
            };
            let keyword = reciprocal_rank_fusion(lists, 60.0);
            Ok(fuse(fusion, vector, keyword))
        })
    }
}

/// What happened on each side of one hybrid query.
#[derive(Debug, Clone, Default)]
pub struct HybridReport {
    /// The vector side's error, if it failed.
    pub vector_error: Option<Error>,
    /// The keyword side's error, if it failed.
    pub keyword_error: Option<Error>,
}

impl HybridReport {
    /// True if either side failed (the answer is then from one side only).
    pub fn degraded(&self) -> bool {
        self.vector_error.is_some() || self.keyword_error.is_some()
    }
}

/// Vector + keyword retrieval, fused; see the [module docs](self).
#[derive(Clone)]
pub struct HybridRetriever {
    vector: Arc<dyn Retriever>,
    keyword: Arc<dyn Retriever>,
    fusion: Fusion,
    top_k: usize,
}

impl std::fmt::Debug for HybridRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridRetriever")
            .field("fusion", &self.fusion)
            .field("top_k", &self.top_k)
            .finish()
    }
}

fn normalised(docs: Vec<Document>) -> Vec<(Document, f64)> {
    let scores: Vec<f64> = docs.iter().map(|d| d.score.unwrap_or(0.0)).collect();
    let (lo, hi) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(*s), hi.max(*s))
        });
    docs.into_iter()
        .zip(scores)
        .map(|(d, s)| {
            let n = if hi > lo { (s - lo) / (hi - lo) } else { 1.0 };
            (d, n)
        })
        .collect()
}

fn weighted(vector: Vec<Document>, keyword: Vec<Document>, w: f64) -> Vec<Document> {
    let mut fused: Vec<(Document, f64)> = Vec::new();
    for (list, weight) in [(vector, w), (keyword, 1.0 - w)] {
        for (d, s) in normalised(list) {
            match fused.iter_mut().find(|(x, _)| x.id == d.id) {
                Some((_, acc)) => *acc += weight * s,
                None => fused.push((d, weight * s)),
            }
        }
    }
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused
        .into_iter()
        .map(|(mut d, s)| {
            d.score = Some(s);
            d
        })
        .collect()
}

/// Fuse a vector and a keyword result list (each best first) into one, best first: the
/// step [`HybridRetriever`] runs after querying both sides, for callers that query the
/// indexes themselves (e.g. one query embedding for several collections).
pub fn fuse(fusion: Fusion, vector: Vec<Document>, keyword: Vec<Document>) -> Vec<Document> {
    match fusion {
        Fusion::Rrf(k) => reciprocal_rank_fusion(vec![vector, keyword], k),
        Fusion::Weighted { vector_weight } => {
            weighted(vector, keyword, vector_weight.clamp(0.0, 1.0))
        }
    }
}

impl HybridRetriever {
    /// Fuse `vector` and `keyword` with RRF (k = 60); 4 results by default.
    pub fn new(vector: Arc<dyn Retriever>, keyword: Arc<dyn Retriever>) -> Self {
        Self {
            vector,
            keyword,
            fusion: Fusion::Rrf(60.0),
            top_k: 4,
        }
    }

    /// Set the fusion.
    pub fn with_fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }

    /// Set the default number of results.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }

    /// Retrieve and say what happened on each side. Fails only if both sides fail.
    pub async fn retrieve_with_report(
        &self,
        query: &str,
        o: &RetrieveOptions,
    ) -> Result<(Vec<Document>, HybridReport)> {
        let k = o.top_k.unwrap_or(self.top_k);
        // Each side gets a deeper list than the answer, so fusion has something to fuse.
        let side = RetrieveOptions {
            top_k: Some(k.saturating_mul(2).max(k)),
            ..o.clone()
        };
        let (v, kw) = futures_util::future::join(
            self.vector.retrieve(query, &side),
            self.keyword.retrieve(query, &side),
        )
        .await;
        let mut report = HybridReport::default();
        let v = v.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "hybrid retrieval: vector side failed, keyword only");
            report.vector_error = Some(e);
            Vec::new()
        });
        let kw = kw.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "hybrid retrieval: keyword side failed, vector only");
            report.keyword_error = Some(e);
            Vec::new()
        });
        if let (Some(a), Some(_)) = (&report.vector_error, &report.keyword_error) {
            return Err(Error::new(
                a.kind(),
                format!("both sides of hybrid retrieval failed: {a}"),
            ));
        }
        let mut fused = fuse(self.fusion, v, kw);
        if let Some(min) = o
            .score_threshold
            .filter(|_| matches!(self.fusion, Fusion::Weighted { .. }))
        {
            fused.retain(|d| d.score.unwrap_or(0.0) >= min);
        }
        fused.truncate(k);
        Ok((fused, report))
    }
}

impl Retriever for HybridRetriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        o: &'a RetrieveOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move { self.retrieve_with_report(query, o).await.map(|(d, _)| d) })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "Hybrid".into()
    }
}
