//! The in-process vector index: named collections of documents with unit-length vectors in
//! one contiguous buffer (exact cosine search is a dot product over it; large collections
//! can be searched approximately through an HNSW graph, see [`HnswConfig`]), metadata filters,
//! upsert and delete by id, safe under many readers and one writer, and optionally
//! persisted to a directory so a restarted process keeps its collections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use eino::schema::Document;
use eino::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod hnsw;
mod upkeep;
pub(crate) use hnsw::dot;
use hnsw::Graph;

/// One source's new chunks, each with its vector: what a replacement of several sources
/// at once takes ([`VectorIndex::replace_sources`], `ChunkStore::replace_sources`).
pub type SourceChunks = (String, Vec<(Document, Vec<f32>)>);
pub use hnsw::{GraphQuantization, HnswConfig};

/// What a collection file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    dim: usize,
    docs: Vec<Document>,
    /// `docs.len() * dim` floats, row i is document i's unit vector.
    vectors: Vec<f32>,
}

#[derive(Debug, Default)]
struct Collection {
    dim: usize,
    docs: Vec<Document>,
    /// `docs.len() * dim` floats, row i is document i's unit vector.
    vectors: Vec<f32>,
    by_id: HashMap<String, usize>,
    /// Row i's slot: its key in the HNSW graph (rows move when others are deleted; slots
    /// never do, and are never reused).
    slots: Vec<usize>,
    row_of_slot: HashMap<usize, usize>,
    next_slot: usize,
    /// The approximate-search graph, once built; it holds every live slot and no other.
    graph: Option<Arc<Graph>>,
}

impl Collection {
    fn from_stored(s: Stored) -> Self {
        let n = s.docs.len();
        Self {
            by_id: s
                .docs
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id.clone(), i))
                .collect(),
            slots: (0..n).collect(),
            row_of_slot: (0..n).map(|i| (i, i)).collect(),
            next_slot: n,
            dim: s.dim,
            docs: s.docs,
            vectors: s.vectors,
            graph: None,
        }
    }

    fn stored(&self) -> Stored {
        Stored {
            dim: self.dim,
            docs: self.docs.clone(),
            vectors: self.vectors.clone(),
        }
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    fn upsert(&mut self, mut doc: Document, v: Vec<f32>) {
        let v = normalize(v);
        doc.embedding = None;
        let slot = self.next_slot;
        self.next_slot += 1;
        let row = match self.by_id.get(&doc.id) {
            Some(&i) => {
                self.vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(&v);
                self.docs[i] = doc;
                let old = std::mem::replace(&mut self.slots[i], slot);
                self.row_of_slot.remove(&old);
                self.unlink(old);
                i
            }
            None => {
                self.by_id.insert(doc.id.clone(), self.docs.len());
                self.docs.push(doc);
                self.vectors.extend_from_slice(&v);
                self.slots.push(slot);
                self.docs.len() - 1
            }
        };
        self.row_of_slot.insert(slot, row);
        self.update_graph(|g| g.insert(&v, slot));
    }

    /// Take a dead slot out of the graph.
    fn unlink(&mut self, slot: usize) {
        self.update_graph(|g| g.remove(slot));
    }

    /// Apply a change to the graph, if there is one; a graph the change fails on is
    /// dropped (exact search answers, and the next search past the threshold rebuilds it).
    fn update_graph(&mut self, change: impl FnOnce(&Graph) -> Result<()>) {
        if let Some(Err(e)) = self.graph.as_deref().map(change) {
            tracing::error!(error = %e, "dropping the HNSW graph; rebuilt later");
            self.graph = None;
        }
    }

    fn delete(&mut self, id: &str) -> bool {
        let Some(i) = self.by_id.remove(id) else {
            return false;
        };
        let last = self.docs.len() - 1;
        self.docs.swap_remove(i);
        let slot = self.slots.swap_remove(i);
        self.row_of_slot.remove(&slot);
        self.unlink(slot);
        if i != last {
            let (head, tail) = self.vectors.split_at_mut(last * self.dim);
            head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            self.by_id.insert(self.docs[i].id.clone(), i);
            self.row_of_slot.insert(self.slots[i], i);
        }
        self.vectors.truncate(last * self.dim);
        true
    }

    /// Whether approximate search applies and the graph is missing or holds too many
    /// nodes of deleted documents.
    fn wants_graph(&self, cfg: &HnswConfig) -> bool {
        self.docs.len() >= cfg.min_docs
            && self
                .graph
                .as_ref()
                .is_none_or(|g| g.vacant() as f64 > cfg.max_dead_fraction * g.points() as f64)
    }

    /// `(similarity, row)` of the best `k` rows for the unit vector `q`, best first.
    fn best(
        &self,
        q: &[f32],
        k: usize,
        filter: Option<&Value>,
        min_score: Option<f64>,
        approximate: Option<&HnswConfig>,
    ) -> Vec<(f32, usize)> {
        let keep_score = |s: f32| min_score.is_none_or(|m| f64::from(s) >= m);
        let keep_row = |i: usize| filter.is_none_or(|f| matches(f, &self.docs[i].metadata));
        // A filter usually selects few documents (one source, one tenant), where a graph
        // walk finds little; those are searched exactly.
        let graph = approximate
            .filter(|cfg| filter.is_none() && self.docs.len() >= cfg.min_docs)
            .and(self.graph.as_ref());
        if let Some(graph) = graph {
            match graph.candidates(q, k) {
                // The graph's distances may be quantized: score its candidates exactly.
                Ok(found) => {
                    let rows = found.into_iter().filter_map(|s| self.row_of_slot.get(&s));
                    return top_k(rows.map(|&i| (dot(self.row(i), q), i)), k, keep_score);
                }
                Err(e) => tracing::warn!(error = %e, "answering exactly"),
            }
        }
        let scored = (0..self.docs.len())
            .filter(|&i| keep_row(i))
            .map(|i| (dot(self.row(i), q), i));
        top_k(scored, k, keep_score)
    }
}

/// The `k` best `(similarity, row)` pairs that `keep` accepts, best first (ties by row).
fn top_k(
    scored: impl Iterator<Item = (f32, usize)>,
    k: usize,
    keep: impl Fn(f32) -> bool,
) -> Vec<(f32, usize)> {
    let mut scored: Vec<(f32, usize)> = scored.filter(|(s, _)| keep(*s)).collect();
    let k = k.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
}

fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// A metadata filter: a JSON object whose every key must match — a value for equality,
/// `{"$in": [..]}` for any of several values, `{"$ne": v}` for inequality.
pub fn matches(filter: &Value, meta: &serde_json::Map<String, Value>) -> bool {
    let Some(conds) = filter.as_object() else {
        return true;
    };
    conds.iter().all(|(k, cond)| {
        let v = meta.get(k);
        match cond {
            Value::Object(op) if op.contains_key("$in") => op["$in"]
                .as_array()
                .is_some_and(|opts| v.is_some_and(|v| opts.contains(v))),
            Value::Object(op) if op.contains_key("$ne") => v != Some(&op["$ne"]),
            want => v == Some(want),
        }
    })
}

/// Collection names are used as file names: letters, digits, `-` and `_` only.
pub(crate) fn check_collection_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "collection name '{name}' must be letters, digits, '-' or '_'"
        )))
    }
}

/// One search hit: the document (with `score` = cosine similarity).
pub type Hit = Document;

/// Named collections of embedded documents. Cheap to clone (shared).
///
/// Search is exact by default. [`with_hnsw`](Self::with_hnsw) turns on an approximate
/// HNSW graph for collections past a size threshold (and unfiltered queries).
#[derive(Debug, Clone, Default)]
pub struct VectorIndex {
    collections: Arc<RwLock<HashMap<String, Collection>>>,
    dir: Option<PathBuf>,
    hnsw: Option<Arc<HnswConfig>>,
    /// Background graph builds (running, and failed ones waiting to be retried).
    building: Arc<Mutex<upkeep::Builds>>,
    /// Numbers every change, taken under the write lock: the order of the changes.
    changes: Arc<AtomicU64>,
    /// The newest change on disk per collection; held while a file is written.
    written: Arc<Mutex<upkeep::Written>>,
}

/// Create `dir` if needed and list the collections stored in it: `(name, path)` of every
/// entry whose file name ends in `suffix` (shared by the vector and BM25 indexes).
pub(crate) fn collection_paths(dir: &Path, suffix: &str) -> Result<Vec<(String, PathBuf)>> {
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(format!("cannot list {}", dir.display())))? {
        let path = entry
            .map_err(io(format!("cannot list {}", dir.display())))?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(suffix))
            .map(str::to_string);
        if let Some(name) = name {
            out.push((name, path));
        }
    }
    Ok(out)
}

/// Every vector has `dim` finite components.
fn check_vectors(collection: &str, dim: usize, items: &[(Document, Vec<f32>)]) -> Result<()> {
    let bad = items
        .iter()
        .find(|(_, v)| v.len() != dim || v.is_empty() || v.iter().any(|x| !x.is_finite()));
    match bad {
        None => Ok(()),
        Some((doc, v)) if v.len() == dim && !v.is_empty() => Err(Error::invalid_input(format!(
            "document '{}' has a vector with a NaN or infinite component",
            doc.id
        ))),
        Some((doc, v)) => Err(Error::invalid_input(format!(
            "document '{}' has a {}-dimensional vector; collection '{collection}' holds {dim}",
            doc.id,
            v.len()
        ))),
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::new(ErrorKind::Internal, what).with_source(e)
}

impl VectorIndex {
    /// An index in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// An index persisted in `dir` (one file per collection, rewritten atomically after
    /// every change); existing collections are loaded.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let mut cols = HashMap::new();
        for (name, path) in collection_paths(&dir, ".collection.json")? {
            let bytes =
                std::fs::read(&path).map_err(io(format!("cannot read {}", path.display())))?;
            let c: Stored = serde_json::from_slice(&bytes).map_err(|e| {
                Error::internal(format!("collection file {} is corrupt", path.display()))
                    .with_source(e)
            })?;
            cols.insert(name, Collection::from_stored(c));
        }
        Ok(Self {
            collections: Arc::new(RwLock::new(cols)),
            dir: Some(dir),
            ..Self::default()
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Collection>> {
        // Writers replace whole entries; a poisoned lock still holds consistent data.
        self.collections.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Collection>> {
        self.collections.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The number of a change; call with the write lock held.
    fn next_change(&self) -> u64 {
        self.changes.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Write the snapshot of change `seq` (or remove the file for `None`), unless a newer
    /// change of the collection is already on disk.
    fn persist(&self, name: &str, seq: u64, c: Option<&Stored>) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.is_stale(name, seq) {
            return Ok(());
        }
        let path = dir.join(format!("{name}.collection.json"));
        match c {
            None => {
                let _ = std::fs::remove_file(&path);
            }
            Some(c) => {
                let tmp = dir.join(format!(".{name}.tmp"));
                let bytes = serde_json::to_vec(c)?;
                std::fs::write(&tmp, bytes)
                    .map_err(io(format!("cannot write {}", tmp.display())))?;
                std::fs::rename(&tmp, &path)
                    .map_err(io(format!("cannot write {}", path.display())))?;
            }
        }
        written.record(name, seq);
        Ok(())
    }

    /// Collection names, sorted.
    pub fn collections(&self) -> Vec<String> {
        let mut v: Vec<String> = self.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Documents in a collection (0 if it does not exist).
    pub fn len(&self, collection: &str) -> usize {
        self.read().get(collection).map_or(0, |c| c.docs.len())
    }

    /// True if the collection is missing or empty.
    pub fn is_empty(&self, collection: &str) -> bool {
        self.len(collection) == 0
    }

    /// Insert or replace documents (by id) with their vectors. All vectors of a collection
    /// have the dimension of its first one.
    pub fn upsert(&self, collection: &str, items: Vec<(Document, Vec<f32>)>) -> Result<()> {
        check_collection_name(collection)?;
        let mut g = self.write();
        let c = g.entry(collection.to_string()).or_default();
        if c.docs.is_empty() {
            c.dim = items.first().map_or(0, |(_, v)| v.len());
            c.graph = None;
        }
        check_vectors(collection, c.dim, &items)?;
        for (doc, v) in items {
            c.upsert(doc, v);
        }
        let snapshot = self.dir.is_some().then(|| c.stored());
        let seq = self.next_change();
        drop(g);
        self.persist(collection, seq, snapshot.as_ref())
    }

    /// Delete documents by id; returns how many existed.
    pub fn delete(&self, collection: &str, ids: &[String]) -> Result<usize> {
        let mut g = self.write();
        let Some(c) = g.get_mut(collection) else {
            return Ok(0);
        };
        let n = ids.iter().filter(|id| c.delete(id)).count();
        let snapshot = self.dir.is_some().then(|| c.stored());
        let seq = self.next_change();
        drop(g);
        self.persist(collection, seq, snapshot.as_ref())?;
        Ok(n)
    }

    /// Delete documents whose metadata matches `filter` (e.g. every chunk of one file).
    pub fn delete_where(&self, collection: &str, filter: &Value) -> Result<usize> {
        let ids: Vec<String> = self
            .read()
            .get(collection)
            .map(|c| {
                c.docs
                    .iter()
                    .filter(|d| matches(filter, &d.metadata))
                    .map(|d| d.id.clone())
                    .collect()
            })
            .unwrap_or_default();
        self.delete(collection, &ids)
    }

    /// Up to `limit` stored documents (without vectors) whose metadata matches `filter`,
    /// in storage order.
    pub fn find_where(&self, collection: &str, filter: &Value, limit: usize) -> Vec<Document> {
        self.read()
            .get(collection)
            .map(|c| {
                c.docs
                    .iter()
                    .filter(|d| matches(filter, &d.metadata))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// In one step (one lock, one write to disk), delete the documents matching `filter`
    /// and insert `items`: a changed file's new chunks replace its old ones, and a reader
    /// sees either all old or all new chunks. Returns how many were deleted.
    pub fn replace_where(
        &self,
        collection: &str,
        filter: &Value,
        items: Vec<(Document, Vec<f32>)>,
    ) -> Result<usize> {
        check_collection_name(collection)?;
        let mut g = self.write();
        let c = g.entry(collection.to_string()).or_default();
        let doomed: Vec<String> = c
            .docs
            .iter()
            .filter(|d| matches(filter, &d.metadata))
            .map(|d| d.id.clone())
            .collect();
        let dim = if doomed.len() == c.docs.len() {
            items.first().map_or(c.dim, |(_, v)| v.len())
        } else {
            c.dim
        };
        check_vectors(collection, dim, &items)?;
        for id in &doomed {
            c.delete(id);
        }
        if c.dim != dim {
            c.dim = dim;
            c.graph = None;
        }
        for (doc, v) in items {
            c.upsert(doc, v);
        }
        let snapshot = self.dir.is_some().then(|| c.stored());
        let seq = self.next_change();
        drop(g);
        self.persist(collection, seq, snapshot.as_ref())?;
        Ok(doomed.len())
    }

    /// [`replace_where`](Self::replace_where) by source for several sources at once (one
    /// lock, one scan, one write to disk): each `(source, items)` pair deletes the
    /// documents whose `source` metadata is that source and inserts its items. Returns how
    /// many each source lost, in order.
    pub fn replace_sources(
        &self,
        collection: &str,
        groups: Vec<SourceChunks>,
    ) -> Result<Vec<usize>> {
        check_collection_name(collection)?;
        let mut g = self.write();
        let c = g.entry(collection.to_string()).or_default();
        let at: HashMap<&str, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, (source, _))| (source.as_str(), i))
            .collect();
        let mut removed = vec![0; groups.len()];
        let doomed: Vec<String> = c
            .docs
            .iter()
            .filter_map(|d| {
                let source = d.metadata.get(crate::load::keys::SOURCE)?.as_str()?;
                removed[*at.get(source)?] += 1;
                Some(d.id.clone())
            })
            .collect();
        let first = groups.iter().flat_map(|(_, items)| items).next();
        let dim = if doomed.len() == c.docs.len() {
            first.map_or(c.dim, |(_, v)| v.len())
        } else {
            c.dim
        };
        for (_, items) in &groups {
            check_vectors(collection, dim, items)?;
        }
        for id in &doomed {
            c.delete(id);
        }
        if c.dim != dim {
            c.dim = dim;
            c.graph = None;
        }
        for (doc, v) in groups.into_iter().flat_map(|(_, items)| items) {
            c.upsert(doc, v);
        }
        let snapshot = self.dir.is_some().then(|| c.stored());
        let seq = self.next_change();
        drop(g);
        self.persist(collection, seq, snapshot.as_ref())?;
        Ok(removed)
    }

    /// Drop a whole collection.
    pub fn drop_collection(&self, collection: &str) -> Result<bool> {
        let (existed, seq) = {
            let mut g = self.write();
            (g.remove(collection).is_some(), self.next_change())
        };
        self.persist(collection, seq, None)?;
        Ok(existed)
    }

    /// The `k` documents most similar to `query` (cosine), best first, that match `filter`
    /// and score at least `min_score`. Exact, unless HNSW is on, the collection is past its
    /// threshold, there is no filter and the graph is built (the first such search starts
    /// building it in the background).
    pub fn search(
        &self,
        collection: &str,
        query: &[f32],
        k: usize,
        filter: Option<&Value>,
        min_score: Option<f64>,
    ) -> Result<Vec<Hit>> {
        self.search_with(collection, query, k, filter, min_score, true)
    }

    /// [`search`](Self::search), always exact (e.g. to measure the graph's recall).
    pub fn search_exact(
        &self,
        collection: &str,
        query: &[f32],
        k: usize,
        filter: Option<&Value>,
        min_score: Option<f64>,
    ) -> Result<Vec<Hit>> {
        self.search_with(collection, query, k, filter, min_score, false)
    }

    fn search_with(
        &self,
        collection: &str,
        query: &[f32],
        k: usize,
        filter: Option<&Value>,
        min_score: Option<f64>,
        approximate: bool,
    ) -> Result<Vec<Hit>> {
        let g = self.read();
        let Some(c) = g.get(collection) else {
            return Ok(Vec::new());
        };
        if c.docs.is_empty() {
            return Ok(Vec::new());
        }
        if query.len() != c.dim || query.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid_input(format!(
                "query vector has {} dimensions (all must be finite); collection '{collection}' holds {}",
                query.len(),
                c.dim
            )));
        }
        let q = normalize(query.to_vec());
        let cfg = self.hnsw.as_deref().filter(|_| approximate);
        let hits = c
            .best(&q, k, filter, min_score, cfg)
            .into_iter()
            .map(|(s, i)| {
                let mut d = c.docs[i].clone();
                d.score = Some(f64::from(s));
                d
            })
            .collect();
        if cfg.is_some_and(|cfg| c.wants_graph(cfg)) {
            drop(g);
            self.build_in_background(collection);
        }
        Ok(hits)
    }

    /// Turn on approximate search: collections with at least `cfg.min_docs` documents get
    /// an HNSW graph (in memory, rebuilt from the stored vectors after a restart).
    pub fn with_hnsw(mut self, cfg: HnswConfig) -> Result<Self> {
        cfg.check()?;
        self.hnsw = Some(Arc::new(cfg));
        Ok(self)
    }

    /// Points in the collection's HNSW graph (dead ones included), if it has one.
    pub fn hnsw_points(&self, collection: &str) -> Option<usize> {
        self.read()
            .get(collection)?
            .graph
            .as_ref()
            .map(|g| g.points())
    }

    /// Bytes the collection's HNSW graph holds (nodes, links and its quantized copies of
    /// the vectors, on top of the f32 rows every collection keeps), if it has one.
    pub fn hnsw_memory(&self, collection: &str) -> Option<usize> {
        self.read()
            .get(collection)?
            .graph
            .as_ref()
            .map(|g| g.memory_bytes())
    }

    /// Build (or rebuild) the collection's HNSW graph now, waiting for it, whatever its
    /// size: e.g. at start-up so the first queries are fast. Returns false when HNSW is
    /// off or the collection is empty or missing. CPU-heavy: call it from a blocking thread.
    pub fn build_hnsw(&self, collection: &str) -> Result<bool> {
        let Some(cfg) = self.hnsw.clone() else {
            return Ok(false);
        };
        // Snapshot the vectors, build outside the lock (readers and writers go on), then
        // add what was written meanwhile and install the graph.
        let (vectors, slots, dim, upto) = {
            let g = self.read();
            let Some(c) = g.get(collection).filter(|c| !c.docs.is_empty()) else {
                return Ok(false);
            };
            (c.vectors.clone(), c.slots.clone(), c.dim, c.next_slot)
        };
        let points: Vec<(&[f32], usize)> = vectors
            .chunks_exact(dim)
            .zip(slots.iter().copied())
            .collect();
        let of_collection =
            |e: Error| Error::internal(format!("collection '{collection}': {}", e.message()));
        let graph = Graph::build(&cfg, dim, &points).map_err(of_collection)?;
        let mut g = self.write();
        let Some(c) = g.get_mut(collection).filter(|c| c.dim == dim) else {
            return Ok(false);
        };
        // Catch up with the writes made during the build: drop what died, add what is new.
        slots
            .iter()
            .filter(|s| !c.row_of_slot.contains_key(s))
            .try_for_each(|&slot| graph.remove(slot))
            .map_err(of_collection)?;
        for (i, &slot) in c.slots.iter().enumerate() {
            if slot >= upto {
                graph.insert(c.row(i), slot).map_err(of_collection)?;
            }
        }
        c.graph = Some(Arc::new(graph));
        Ok(true)
    }

    fn build_in_background(&self, collection: &str) {
        let started = self
            .building
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_start(collection, std::time::Instant::now());
        if !started {
            return;
        }
        let (index, name) = (self.clone(), collection.to_string());
        let finish = move |index: &VectorIndex, name: &str, ok: bool| {
            let mut b = index.building.lock().unwrap_or_else(|p| p.into_inner());
            b.finish(name, ok, std::time::Instant::now());
        };
        let spawned = std::thread::Builder::new()
            .name("eino-hnsw-build".into())
            .spawn(move || {
                let ok = match index.build_hnsw(&name) {
                    Ok(_) => {
                        tracing::info!(collection = %name, "HNSW graph built");
                        true
                    }
                    Err(e) => {
                        tracing::error!(collection = %name, error = %e, "HNSW build failed; exact search goes on, retried later");
                        false
                    }
                };
                finish(&index, &name, ok);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the HNSW build thread");
            finish(self, collection, false);
        }
    }

    /// The directory this index persists to, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}
