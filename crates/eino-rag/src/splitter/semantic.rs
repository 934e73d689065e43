//! The semantic splitter: cuts where the meaning changes, not where a size runs out.
//!
//! At every gap between two sentences, the sentences just before it and just after it are
//! embedded (a window of a few sentences smooths out short ones). The cosine distance
//! between the two sides is high where the topic moves on. A cut goes into every gap whose
//! distance is above the given percentile of all the distances in the document. A chunk that is still too large
//! is split again at text boundaries.

use std::collections::HashMap;
use std::sync::Arc;

use eino::component::{EmbedOptions, Embedder, TransformOptions, Transformer};
use eino::schema::Document;
use eino::{Error, Result};
use futures_util::future::BoxFuture;
use text_splitter::TextSplitter;
use unicode_segmentation::UnicodeSegmentation;

use super::{chunk_doc, config, Size};
use crate::index::dot;

/// Splits text where the embedding of consecutive sentences changes most.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use eino::component::{EmbedOptions, Embedder};
/// use eino::schema::Document;
/// use eino_rag::splitter::SemanticSplitter;
///
/// // A stand-in embedder for the example: one axis per topic word.
/// struct Topics;
/// impl Embedder for Topics {
///     fn embed<'a>(&'a self, texts: &'a [String], _: &'a EmbedOptions)
///         -> futures_util::future::BoxFuture<'a, eino::Result<Vec<Vec<f32>>>> {
///         let v = |t: &str| ["tide", "bread"].map(|w| t.matches(w).count() as f32 + 0.01).to_vec();
///         Box::pin(async move { Ok(texts.iter().map(|t| v(t)).collect()) })
///     }
/// }
///
/// let text = "The tide rises. The tide falls. Bake the bread. The bread cools.";
/// let splitter = SemanticSplitter::new(Arc::new(Topics)).with_buffer(0);
/// let chunks = splitter.split(&Document::new("d", text)).await.unwrap();
/// assert_eq!(chunks[0].content, "The tide rises. The tide falls.");
/// assert_eq!(chunks[1].content, "Bake the bread. The bread cools.");
/// assert_eq!(chunks[1].id, "d#1");
/// # });
/// ```
#[derive(Clone)]
pub struct SemanticSplitter {
    embedder: Arc<dyn Embedder>,
    percentile: f64,
    buffer: usize,
    max: Option<usize>,
    size: Size,
    batch: usize,
}

impl std::fmt::Debug for SemanticSplitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticSplitter")
            .field("embedder", &self.embedder.type_name())
            .field("percentile", &self.percentile)
            .field("buffer", &self.buffer)
            .field("max", &self.max)
            .field("size", &self.size)
            .finish()
    }
}

impl SemanticSplitter {
    /// Cut at distances above the 95th percentile, two sentences on each side of a gap,
    /// no size limit.
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self {
            embedder,
            percentile: 95.0,
            buffer: 1,
            max: None,
            size: Size::Chars,
            batch: 32,
        }
    }

    /// Cut where the distance is above this percentile (0–100) of the document's
    /// distances: lower means more, smaller chunks.
    pub fn with_percentile(mut self, percentile: f64) -> Self {
        self.percentile = percentile;
        self
    }

    /// How many more sentences each side of a gap takes in (0 = one sentence per side).
    pub fn with_buffer(mut self, buffer: usize) -> Self {
        self.buffer = buffer;
        self
    }

    /// Split chunks larger than `max` again at text boundaries.
    pub fn with_max_size(mut self, max: usize) -> Self {
        self.max = Some(max);
        self
    }

    /// Measure `with_max_size` with `size` instead of characters.
    pub fn with_size(mut self, size: Size) -> Self {
        self.size = size;
        self
    }

    /// Texts per embedding call.
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Split one document.
    pub async fn split(&self, doc: &Document) -> Result<Vec<Document>> {
        if !(0.0..=100.0).contains(&self.percentile) {
            return Err(Error::invalid_input(format!(
                "semantic splitter percentile {} is not between 0 and 100",
                self.percentile
            )));
        }
        let sentences = sentences(&doc.content);
        let groups = if sentences.len() < 2 {
            vec![sentences.concat()]
        } else {
            let distances = self.distances(&sentences).await?;
            let threshold = percentile(&distances, self.percentile);
            let mut groups = vec![String::new()];
            for (i, s) in sentences.iter().enumerate() {
                groups.last_mut().expect("never empty").push_str(s);
                if distances.get(i).is_some_and(|d| *d > threshold) {
                    groups.push(String::new());
                }
            }
            groups
        };
        let resplit = match self.max {
            Some(max) => Some(TextSplitter::new(config(max, 0, &self.size)?)),
            None => None,
        };
        let mut out = Vec::new();
        for g in groups {
            let g = g.trim();
            match &resplit {
                Some(s) => {
                    for piece in s.chunks(g) {
                        out.push(chunk_doc(doc, out.len(), piece));
                    }
                }
                None if !g.is_empty() => out.push(chunk_doc(doc, out.len(), g)),
                None => {}
            }
        }
        Ok(out)
    }

    /// For every gap between sentence `i` and `i + 1`: the cosine distance between the
    /// `buffer + 1` sentences before it and the `buffer + 1` after it (windows centred on
    /// the gap, so a topic change scores highest exactly where it happens).
    async fn distances(&self, sentences: &[&str]) -> Result<Vec<f32>> {
        let n = sentences.len();
        let window = |lo: usize, hi: usize| sentences[lo..hi].concat().trim().to_string();
        let gaps: Vec<(String, String)> = (0..n - 1)
            .map(|i| {
                let before = window(i.saturating_sub(self.buffer), i + 1);
                let after = window(i + 1, (i + 2 + self.buffer).min(n));
                (before, after)
            })
            .collect();
        // Windows repeat across gaps (with buffer 0 every sentence is one gap's "after"
        // and the next one's "before"): embed each text once.
        let mut unique: Vec<String> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (b, a) in &gaps {
            for t in [b, a] {
                if !at.contains_key(t.as_str()) {
                    at.insert(t, unique.len());
                    unique.push(t.clone());
                }
            }
        }
        let mut vectors = Vec::with_capacity(unique.len());
        for batch in unique.chunks(self.batch) {
            let got = self.embedder.embed(batch, &EmbedOptions::default()).await?;
            if got.len() != batch.len() {
                return Err(Error::internal(format!(
                    "embedder returned {} vectors for {} texts",
                    got.len(),
                    batch.len()
                )));
            }
            vectors.extend(got);
        }
        Ok(gaps
            .iter()
            .map(|(b, a)| 1.0 - cosine(&vectors[at[b.as_str()]], &vectors[at[a.as_str()]]))
            .collect())
    }
}

/// Sentences with their trailing whitespace, so they concatenate back to the text; a
/// whitespace-only piece joins the sentence before it.
fn sentences(text: &str) -> Vec<&str> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (at, s) in text.split_sentence_bound_indices() {
        let end = at + s.len();
        match out.last_mut() {
            Some(last) if s.trim().is_empty() => last.1 = end,
            _ => out.push((at, end)),
        }
    }
    out.into_iter().map(|(a, b)| &text[a..b]).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let norms = (dot(a, a) * dot(b, b)).sqrt();
    if norms == 0.0 {
        0.0
    } else {
        dot(a, b) / norms
    }
}

/// The `p`th percentile of `values`, interpolating linearly between ranks (the common
/// "linear" definition, as in NumPy's default).
fn percentile(values: &[f32], p: f64) -> f32 {
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let frac = (rank - lo as f64) as f32;
    v[lo] + (v[hi] - v[lo]) * frac
}

impl Transformer for SemanticSplitter {
    fn transform<'a>(
        &'a self,
        docs: Vec<Document>,
        _: &'a TransformOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for d in &docs {
                out.extend(self.split(d).await?);
            }
            Ok(out)
        })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "SemanticSplitter".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stand-in embedder (these tests are about the cutting rule, not the model; the
    /// real-model test is `tests/semantic.rs`): one axis per topic word.
    struct Topics;

    impl Embedder for Topics {
        fn embed<'a>(
            &'a self,
            texts: &'a [String],
            _: &'a EmbedOptions,
        ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
            let v = |t: &str| {
                ["tide", "bread", "train"]
                    .map(|w| t.matches(w).count() as f32 + 0.01)
                    .to_vec()
            };
            Box::pin(async move { Ok(texts.iter().map(|t| v(t)).collect()) })
        }
    }

    fn splitter() -> SemanticSplitter {
        SemanticSplitter::new(Arc::new(Topics)).with_buffer(0)
    }

    const THREE: &str = "The tide rises. The tide falls.\n\nBake the bread. Slice the bread. \
                         The train leaves. The train is late.";

    #[test]
    fn percentile_interpolates_between_ranks() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&[7.0], 95.0), 7.0);
    }

    #[test]
    fn sentences_keep_their_whitespace() {
        let s = sentences("One. Two!\n\n  Three?");
        assert_eq!(s, ["One. ", "Two!\n\n", "  Three?"]);
        assert!(sentences("").is_empty());
    }

    #[tokio::test]
    async fn a_lower_percentile_cuts_more() {
        let d = Document::new("d", THREE);
        let two = splitter().with_percentile(70.0).split(&d).await.unwrap();
        let texts: Vec<&str> = two.iter().map(|c| c.content.as_str()).collect();
        assert_eq!(
            texts,
            [
                "The tide rises. The tide falls.",
                "Bake the bread. Slice the bread.",
                "The train leaves. The train is late."
            ]
        );
        assert_eq!(two[2].metadata["parent_id"], "d");
        assert_eq!(two[2].metadata["chunk_index"], 2);
        // Nothing is above the 100th percentile: one chunk.
        let one = splitter().with_percentile(100.0).split(&d).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].content, THREE);
    }

    #[tokio::test]
    async fn large_chunks_are_split_again() {
        let d = Document::new("d", THREE);
        let chunks = splitter()
            .with_percentile(70.0)
            .with_max_size(20)
            .split(&d)
            .await
            .unwrap();
        assert!(chunks.iter().all(|c| c.content.chars().count() <= 20));
        assert_eq!(chunks[0].content, "The tide rises.");
        let ids: Vec<&str> = chunks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids[..3], ["d#0", "d#1", "d#2"]);
    }

    #[tokio::test]
    async fn bad_settings_and_short_texts() {
        let d = Document::new("d", THREE);
        let err = splitter()
            .with_percentile(101.0)
            .split(&d)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), eino::ErrorKind::InvalidInput);
        assert!(splitter()
            .split(&Document::new("e", "  "))
            .await
            .unwrap()
            .is_empty());
        let one = splitter()
            .split(&Document::new("o", "Just one."))
            .await
            .unwrap();
        assert_eq!(one[0].content, "Just one.");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the cut points, no text is lost or reordered: the chunks are the
        /// document's sentences, in order.
        #[test]
        fn chunks_cover_the_text_in_order(
            words in proptest::collection::vec("(tide|bread|train|sea|a)[.!? ]{1,2}", 1..40),
            p in 0.0f64..=100.0,
        ) {
            let text = words.concat();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let chunks = rt.block_on(splitter().with_percentile(p).split(&Document::new("d", &text))).unwrap();
            let squash = |s: &str| s.split_whitespace().collect::<String>();
            let joined: String = chunks.iter().map(|c| squash(&c.content)).collect();
            prop_assert_eq!(joined, squash(&text));
        }
    }
}
