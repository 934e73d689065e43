//! The in-process vector index: named collections of documents with unit-length vectors in
//! one contiguous buffer (exact cosine search is a dot product over it), metadata filters,
//! upsert and delete by id, safe under many readers and one writer, and optionally
//! persisted to a directory so a restarted process keeps its collections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use eino::schema::Document;
use eino::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Collection {
    dim: usize,
    docs: Vec<Document>,
    /// `docs.len() * dim` floats, row i is document i's unit vector.
    vectors: Vec<f32>,
    #[serde(skip)]
    by_id: HashMap<String, usize>,
}

impl Collection {
    fn reindex(&mut self) {
        self.by_id = self
            .docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
    }

    fn upsert(&mut self, mut doc: Document, v: Vec<f32>) {
        let v = normalize(v);
        doc.embedding = None;
        match self.by_id.get(&doc.id) {
            Some(&i) => {
                self.vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(&v);
                self.docs[i] = doc;
            }
            None => {
                self.by_id.insert(doc.id.clone(), self.docs.len());
                self.docs.push(doc);
                self.vectors.extend_from_slice(&v);
            }
        }
    }

    fn delete(&mut self, id: &str) -> bool {
        let Some(i) = self.by_id.remove(id) else {
            return false;
        };
        let last = self.docs.len() - 1;
        self.docs.swap_remove(i);
        if i != last {
            let (head, tail) = self.vectors.split_at_mut(last * self.dim);
            head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            self.by_id.insert(self.docs[i].id.clone(), i);
        }
        self.vectors.truncate(last * self.dim);
        true
    }
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
#[derive(Debug, Clone, Default)]
pub struct VectorIndex {
    collections: Arc<RwLock<HashMap<String, Collection>>>,
    dir: Option<PathBuf>,
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
            let mut c: Collection = serde_json::from_slice(&bytes).map_err(|e| {
                Error::internal(format!("collection file {} is corrupt", path.display()))
                    .with_source(e)
            })?;
            c.reindex();
            cols.insert(name, c);
        }
        Ok(Self {
            collections: Arc::new(RwLock::new(cols)),
            dir: Some(dir),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Collection>> {
        // Writers replace whole entries; a poisoned lock still holds consistent data.
        self.collections.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Collection>> {
        self.collections.write().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, name: &str, c: Option<&Collection>) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let path = dir.join(format!("{name}.collection.json"));
        match c {
            None => {
                let _ = std::fs::remove_file(&path);
                Ok(())
            }
            Some(c) => {
                let tmp = dir.join(format!(".{name}.tmp"));
                let bytes = serde_json::to_vec(c)?;
                std::fs::write(&tmp, bytes)
                    .map_err(io(format!("cannot write {}", tmp.display())))?;
                std::fs::rename(&tmp, &path).map_err(io(format!("cannot write {}", path.display())))
            }
        }
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
        for (doc, v) in &items {
            if c.dim == 0 && c.docs.is_empty() {
                c.dim = v.len();
            }
            if v.len() != c.dim || v.is_empty() {
                return Err(Error::invalid_input(format!(
                    "document '{}' has a {}-dimensional vector; collection '{collection}' holds {}",
                    doc.id,
                    v.len(),
                    c.dim
                )));
            }
        }
        for (doc, v) in items {
            c.upsert(doc, v);
        }
        let snapshot = self.dir.is_some().then(|| c.clone());
        drop(g);
        self.persist(collection, snapshot.as_ref())
    }

    /// Delete documents by id; returns how many existed.
    pub fn delete(&self, collection: &str, ids: &[String]) -> Result<usize> {
        let mut g = self.write();
        let Some(c) = g.get_mut(collection) else {
            return Ok(0);
        };
        let n = ids.iter().filter(|id| c.delete(id)).count();
        let snapshot = self.dir.is_some().then(|| c.clone());
        drop(g);
        self.persist(collection, snapshot.as_ref())?;
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
        if let Some((doc, v)) = items.iter().find(|(_, v)| v.len() != dim || v.is_empty()) {
            return Err(Error::invalid_input(format!(
                "document '{}' has a {}-dimensional vector; collection '{collection}' holds {dim}",
                doc.id,
                v.len()
            )));
        }
        for id in &doomed {
            c.delete(id);
        }
        c.dim = dim;
        for (doc, v) in items {
            c.upsert(doc, v);
        }
        let snapshot = self.dir.is_some().then(|| c.clone());
        drop(g);
        self.persist(collection, snapshot.as_ref())?;
        Ok(doomed.len())
    }

    /// Drop a whole collection.
    pub fn drop_collection(&self, collection: &str) -> Result<bool> {
        let existed = self.write().remove(collection).is_some();
        self.persist(collection, None)?;
        Ok(existed)
    }

    /// The `k` documents most similar to `query` (exact cosine), best first, that match
    /// `filter` and score at least `min_score`.
    pub fn search(
        &self,
        collection: &str,
        query: &[f32],
        k: usize,
        filter: Option<&Value>,
        min_score: Option<f64>,
    ) -> Result<Vec<Hit>> {
        let g = self.read();
        let Some(c) = g.get(collection) else {
            return Ok(Vec::new());
        };
        if c.docs.is_empty() {
            return Ok(Vec::new());
        }
        if query.len() != c.dim {
            return Err(Error::invalid_input(format!(
                "query vector has {} dimensions; collection '{collection}' holds {}",
                query.len(),
                c.dim
            )));
        }
        let q = normalize(query.to_vec());
        let mut scored: Vec<(f32, usize)> = c
            .vectors
            .chunks_exact(c.dim)
            .enumerate()
            .filter(|(i, _)| filter.is_none_or(|f| matches(f, &c.docs[*i].metadata)))
            .map(|(i, row)| (row.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(), i))
            .filter(|(s, _)| min_score.is_none_or(|m| f64::from(*s) >= m))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        scored.truncate(k);
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(scored
            .into_iter()
            .map(|(s, i)| {
                let mut d = c.docs[i].clone();
                d.score = Some(f64::from(s));
                d
            })
            .collect())
    }

    /// The directory this index persists to, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}
