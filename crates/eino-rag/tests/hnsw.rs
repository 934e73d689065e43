//! The vector index's approximate (HNSW) mode on a few thousand random unit vectors:
//! recall against exact search, deletes and replacements, filters, the background build
//! and the rebuild once many points are dead.

use std::time::Duration;

use eino::schema::Document;
use eino_rag::index::HnswConfig;
use eino_rag::VectorIndex;
use serde_json::json;

const DIM: usize = 24;

/// A deterministic stream of pseudo-random vectors (xorshift; no seeding crate needed).
struct Vectors(u64);

impl Vectors {
    fn next(&mut self) -> Vec<f32> {
        (0..DIM)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }
}

fn doc(i: usize) -> Document {
    let mut d = Document::new(format!("d{i}"), format!("document {i}"));
    d.metadata.insert("even".into(), json!(i.is_multiple_of(2)));
    d
}

fn filled(n: usize, cfg: HnswConfig) -> (VectorIndex, Vectors) {
    let index = VectorIndex::in_memory().with_hnsw(cfg).unwrap();
    let mut gen = Vectors(0x9E37_79B9_7F4A_7C15);
    let items = (0..n).map(|i| (doc(i), gen.next())).collect();
    index.upsert("c", items).unwrap();
    (index, gen)
}

/// Wait for the background build (a bounded wait for a thread, not a timing assertion).
fn wait_for_graph(index: &VectorIndex, points: usize) {
    for _ in 0..600 {
        if index.hnsw_points("c") == Some(points) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "the graph never reached {points} points: {:?}",
        index.hnsw_points("c")
    );
}

fn ids(hits: &[Document]) -> Vec<&str> {
    hits.iter().map(|d| d.id.as_str()).collect()
}

#[test]
fn approximate_search_agrees_with_exact() {
    let (index, mut gen) = filled(3000, HnswConfig::default().with_min_docs(1000));
    let q = gen.next();
    // The first search is exact and starts the build.
    let first = index.search("c", &q, 10, None, None).unwrap();
    assert_eq!(first, index.search_exact("c", &q, 10, None, None).unwrap());
    wait_for_graph(&index, 3000);

    let (mut found, mut total) = (0, 0);
    for _ in 0..50 {
        let q = gen.next();
        let exact = index.search_exact("c", &q, 10, None, None).unwrap();
        let approx = index.search("c", &q, 10, None, None).unwrap();
        assert_eq!(approx.len(), 10);
        assert!(approx.windows(2).all(|w| w[0].score >= w[1].score));
        found += ids(&approx)
            .iter()
            .filter(|id| ids(&exact).contains(id))
            .count();
        total += exact.len();
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.9, "recall@10 {recall}");
}

#[test]
fn deletes_replacements_and_filters() {
    let (index, mut gen) = filled(1500, HnswConfig::default().with_min_docs(1000));
    assert!(index.build_hnsw("c").unwrap());
    assert_eq!(index.hnsw_points("c"), Some(1500));

    // A deleted document is never returned; its node stays in the graph, vacant.
    let q = gen.next();
    let top = index.search("c", &q, 1, None, None).unwrap();
    index.delete("c", &[top[0].id.clone()]).unwrap();
    let after = index.search("c", &q, 10, None, None).unwrap();
    assert_eq!(after.len(), 10);
    assert!(!ids(&after).contains(&top[0].id.as_str()));
    assert_eq!(index.hnsw_points("c"), Some(1500));

    // A replaced vector is found at its new place: its old point is removed and the new
    // one takes a vacant node, so the graph does not grow.
    let target = gen.next();
    index.upsert("c", vec![(doc(42), target.clone())]).unwrap();
    assert_eq!(index.hnsw_points("c"), Some(1500));
    // A new document takes the deleted one's node; the next one grows the graph.
    index.upsert("c", vec![(doc(5000), gen.next())]).unwrap();
    assert_eq!(index.hnsw_points("c"), Some(1500));
    index.upsert("c", vec![(doc(5001), gen.next())]).unwrap();
    assert_eq!(index.hnsw_points("c"), Some(1501));
    let hit = index.search("c", &target, 1, None, None).unwrap();
    assert_eq!(hit[0].id, "d42");
    assert!((hit[0].score.unwrap() - 1.0).abs() < 1e-5);

    // Filtered searches are exact.
    let even = json!({"even": true});
    let got = index.search("c", &q, 10, Some(&even), None).unwrap();
    assert_eq!(
        got,
        index.search_exact("c", &q, 10, Some(&even), None).unwrap()
    );
    assert!(got.iter().all(|d| d.metadata["even"] == json!(true)));
    // So is a collection below the threshold.
    let small = VectorIndex::in_memory()
        .with_hnsw(HnswConfig::default().with_min_docs(10))
        .unwrap();
    small.upsert("c", vec![(doc(1), gen.next())]).unwrap();
    assert_eq!(small.search("c", &q, 5, None, None).unwrap().len(), 1);
    assert_eq!(small.hnsw_points("c"), None);
}

#[test]
fn many_deletes_rebuild_the_graph() {
    let (index, mut gen) = filled(1200, HnswConfig::default().with_min_docs(500));
    assert!(index.build_hnsw("c").unwrap());
    let doomed: Vec<String> = (0..400).map(|i| format!("d{i}")).collect();
    assert_eq!(index.delete("c", &doomed).unwrap(), 400);
    // 400 of 1200 nodes are vacant, past the default 25 %: the next search rebuilds.
    assert_eq!(index.hnsw_points("c"), Some(1200));
    index.search("c", &gen.next(), 3, None, None).unwrap();
    wait_for_graph(&index, 800);
}

#[test]
fn bad_vectors_and_settings_are_refused() {
    let index = VectorIndex::in_memory();
    let err = index
        .upsert("c", vec![(doc(1), vec![f32::NAN, 1.0])])
        .unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    index.upsert("c", vec![(doc(1), vec![0.0, 1.0])]).unwrap();
    assert!(index
        .search("c", &[f32::INFINITY, 0.0], 1, None, None)
        .is_err());
    let bad = HnswConfig::default().with_construction(1, 10);
    assert!(VectorIndex::in_memory().with_hnsw(bad).is_err());
}

#[test]
fn searches_running_beside_writes_only_ever_see_live_documents() {
    let (index, mut gen) = filled(2000, HnswConfig::default().with_min_docs(1000));
    assert!(index.build_hnsw("c").unwrap());
    let queries: Vec<Vec<f32>> = (0..40).map(|_| gen.next()).collect();
    let fresh: Vec<Vec<f32>> = (0..300).map(|_| gen.next()).collect();
    std::thread::scope(|s| {
        for part in queries.chunks(10) {
            let index = &index;
            s.spawn(move || {
                for _ in 0..5 {
                    for q in part {
                        let hits = index.search("c", q, 10, None, None).unwrap();
                        assert_eq!(hits.len(), 10);
                        // Documents 0..300 are being deleted; a search may or may not
                        // see a deletion, but every hit is a document and the scores
                        // are exact cosines, best first.
                        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
                    }
                }
            });
        }
        // The writer: delete 300 documents and add 300 new ones, one at a time.
        for (i, v) in fresh.iter().enumerate() {
            index.delete("c", &[format!("d{i}")]).unwrap();
            index
                .upsert("c", vec![(doc(10_000 + i), v.clone())])
                .unwrap();
        }
    });
    // Every new document took a deleted one's node: the graph did not grow.
    assert_eq!(index.hnsw_points("c"), Some(2000));
    for (i, v) in fresh.iter().enumerate() {
        let hit = index.search("c", v, 1, None, None).unwrap();
        assert_eq!(hit[0].id, format!("d{}", 10_000 + i));
    }
    for q in &queries {
        let hits = index.search("c", q, 10, None, None).unwrap();
        let stale = ids(&hits).into_iter().filter(|id| {
            id.strip_prefix('d')
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n < 300)
        });
        assert_eq!(stale.count(), 0, "deleted documents found");
    }
}
