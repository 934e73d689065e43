//! The BM25 index's unit tests.
use super::*;
use serde_json::json;

fn doc(id: &str, text: &str, source: &str) -> Document {
    let mut d = Document {
        id: id.into(),
        content: text.into(),
        ..Document::default()
    };
    d.metadata.insert("source".into(), source.into());
    d
}

fn corpus() -> Vec<Document> {
    vec![
        doc("1", "The quick brown fox jumps over the lazy dog", "a.txt"),
        doc("2", "Foxes are small omnivorous mammals", "a.txt"),
        doc("3", "Rust is a systems programming language", "b.txt"),
        doc(
            "4",
            "Tantivy is a full-text search engine written in Rust",
            "b.txt",
        ),
    ]
}

#[test]
fn source_filters_use_the_indexed_source_and_old_indexes_still_work() {
    let check = |ix: &Bm25Index| {
        ix.upsert("kb", corpus()).unwrap();
        let only_a = json!({"source": "a.txt"});
        let found = ix.find_where("kb", &only_a, 10).unwrap();
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|d| d.metadata["source"] == "a.txt"));
        // The rest of the filter still applies.
        let none = json!({"source": "a.txt", "lang": "fr"});
        assert!(ix.find_where("kb", &none, 10).unwrap().is_empty());
        let fresh = vec![doc("5", "Foxes hunt at dusk", "a.txt")];
        assert_eq!(ix.replace_where("kb", &only_a, fresh).unwrap(), 2);
        assert_eq!(ix.len("kb"), 3);
    };
    check(&Bm25Index::in_memory());

    // An index written before the `source` field existed opens and falls back to a scan.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("kb{SUFFIX}"));
    std::fs::create_dir_all(&path).unwrap();
    Index::create_in_dir(&path, schema_v1().build()).unwrap();
    let old = Bm25Index::open(dir.path()).unwrap();
    check(&old);
}

#[test]
fn ranks_by_bm25_with_stemming() {
    let ix = Bm25Index::in_memory();
    ix.upsert("kb", corpus()).unwrap();
    let hits = ix.search("kb", "fox", 10, None, None).unwrap();
    let ids: Vec<&str> = hits.iter().map(|d| d.id.as_str()).collect();
    // "Foxes" stems to "fox": both fox documents match, nothing else.
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"1") && ids.contains(&"2"));
    assert!(hits[0].score.unwrap() >= hits[1].score.unwrap());
    let hits = ix
        .search("kb", "search engine in Rust", 1, None, None)
        .unwrap();
    assert_eq!(hits[0].id, "4");
    assert_eq!(hits[0].metadata["source"], "b.txt");
}

#[test]
fn punctuation_only_or_unknown_queries_find_nothing() {
    let ix = Bm25Index::in_memory();
    ix.upsert("kb", corpus()).unwrap();
    assert!(ix.search("kb", "?!\"(", 5, None, None).unwrap().is_empty());
    assert!(ix.search("kb", "zebra", 5, None, None).unwrap().is_empty());
    // Stop words alone match nothing, though "the" is in document 1.
    assert!(ix
        .search("kb", "what is the", 5, None, None)
        .unwrap()
        .is_empty());
    assert!(ix
        .search("missing", "fox", 5, None, None)
        .unwrap()
        .is_empty());
    assert!(ix.search("kb", "fox", 0, None, None).unwrap().is_empty());
}

#[test]
fn filters_thresholds_upsert_and_delete() {
    let ix = Bm25Index::in_memory();
    ix.upsert("kb", corpus()).unwrap();
    let f = json!({"source": "b.txt"});
    let hits = ix.search("kb", "fox rust", 10, Some(&f), None).unwrap();
    assert!(hits.iter().all(|d| d.metadata["source"] == "b.txt"));
    assert_eq!(hits.len(), 2);
    let top = ix.search("kb", "fox", 1, None, None).unwrap()[0]
        .score
        .unwrap();
    assert!(ix
        .search("kb", "fox", 5, None, Some(top + 1.0))
        .unwrap()
        .is_empty());

    ix.upsert(
        "kb",
        vec![doc("3", "Rust has no garbage collector", "b.txt")],
    )
    .unwrap();
    assert_eq!(ix.len("kb"), 4);
    assert!(ix
        .search("kb", "systems", 5, None, None)
        .unwrap()
        .is_empty());
    assert_eq!(
        ix.search("kb", "garbage", 5, None, None).unwrap()[0].id,
        "3"
    );

    assert_eq!(
        ix.delete("kb", &["1".into(), "1".into(), "nope".into()])
            .unwrap(),
        1
    );
    assert_eq!(ix.len("kb"), 3);
    let replaced = ix
        .replace_where(
            "kb",
            &json!({"source": "a.txt"}),
            vec![doc("5", "new fox", "a.txt")],
        )
        .unwrap();
    assert_eq!(replaced, 1);
    let a = ix
        .find_where("kb", &json!({"source": "a.txt"}), 10)
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].id, "5");
    assert_eq!(
        ix.delete_where("kb", &json!({"source": "b.txt"})).unwrap(),
        2
    );
    assert_eq!(ix.len("kb"), 1);
}

#[test]
fn rejects_bad_names_and_missing_ids() {
    let ix = Bm25Index::in_memory();
    assert_eq!(
        ix.upsert("../x", corpus()).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let err = ix.upsert("kb", vec![doc("", "text", "a")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn persists_across_reopen_and_drops() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ix = Bm25Index::open(dir.path()).unwrap();
        ix.upsert("kb", corpus()).unwrap();
        ix.upsert("other", vec![doc("x", "lonely", "c")]).unwrap();
    }
    let ix = Bm25Index::open(dir.path()).unwrap();
    assert_eq!(ix.collections(), vec!["kb", "other"]);
    assert_eq!(ix.len("kb"), 4);
    assert_eq!(
        ix.search("kb", "tantivy", 1, None, None).unwrap()[0].id,
        "4"
    );
    assert!(ix.drop_collection("other").unwrap());
    drop(ix);
    let ix = Bm25Index::open(dir.path()).unwrap();
    assert_eq!(ix.collections(), vec!["kb"]);
}

#[test]
fn concurrent_readers_see_whole_commits() {
    let ix = Bm25Index::in_memory();
    ix.upsert("kb", corpus()).unwrap();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 0..20 {
                let docs = (0..5)
                    .map(|j| doc(&format!("w{i}-{j}"), "batch fox", &format!("w{i}")))
                    .collect();
                ix.replace_where("kb", &json!({"source": format!("w{i}")}), docs)
                    .unwrap();
            }
        });
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..50 {
                    let n = ix.len("kb");
                    // Batches of 5 land whole: 4 base docs + 5 per committed batch.
                    assert_eq!((n - 4) % 5, 0, "saw a half-written batch: {n}");
                }
            });
        }
        writer.join().unwrap();
    });
    assert_eq!(ix.len("kb"), 4 + 100);
}
