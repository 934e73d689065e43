//! The in-process keyword index: named collections of documents in tantivy indexes, scored
//! with BM25, with the same metadata filters, upsert/delete by id and on-disk persistence as
//! the [`VectorIndex`](crate::VectorIndex), so the two can sit side by side under one
//! knowledge base and feed a [`HybridRetriever`](crate::HybridRetriever).
//!
//! Text is split on non-alphanumeric characters, lower-cased, stripped of stop words and stemmed (English by
//! default, see [`Bm25Index::with_language`]). A query is analysed the same way and every
//! term is optional (an OR of terms, ranked by BM25), so a natural-language question needs no
//! query syntax and can never be a syntax error.
//!
//! ```
//! use eino::schema::Document;
//! use eino_rag::Bm25Index;
//! let index = Bm25Index::in_memory();
//! let doc = |id: &str, text: &str| Document { id: id.into(), content: text.into(), ..Document::default() };
//! index.upsert("kb", vec![doc("a", "Berlin is the capital of Germany"), doc("b", "Paris is in France")]).unwrap();
//! let hits = index.search("kb", "What is Germany's capital?", 1, None, None).unwrap();
//! assert_eq!(hits[0].id, "a");
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use eino::component::{IndexOptions, Indexer, RetrieveOptions, Retriever};
use eino::schema::Document;
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;
use serde_json::Value;
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, SchemaBuilder, TextFieldIndexing, TextOptions, Value as _,
    STORED, STRING,
};
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use tantivy::tokenizer::Language;

use crate::index::matches;

/// The tokenizer name registered on every collection's index.
const ANALYZER: &str = "eino_text";
/// Writer heap: tantivy's minimum per thread is 15 MB; one thread per write is plenty for
/// batches of chunks and keeps many collections cheap.
const WRITER_HEAP: usize = 20_000_000;

fn tantivy_err(what: String) -> impl FnOnce(tantivy::TantivyError) -> Error {
    move |e| Error::new(ErrorKind::Internal, what).with_source(e)
}

struct Fields {
    id: Field,
    content: Field,
    /// The whole document (metadata included) as JSON, returned on a hit.
    doc: Field,
    /// The `source` metadata value, indexed so a source's chunks are found by one term
    /// lookup instead of a scan. `None` in indexes written before it existed.
    source: Option<Field>,
}

impl Fields {
    fn of(schema: &Schema) -> Result<Self> {
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| {
                Error::internal(format!("BM25 index without the {name} field: not ours"))
            })
        };
        Ok(Self {
            id: field("id")?,
            content: field("content")?,
            doc: field("doc")?,
            source: schema.get_field(SOURCE_FIELD).ok(),
        })
    }
}

const SOURCE_FIELD: &str = "source";

/// The fields of the first index version: id, analysed content, the stored document.
fn schema_v1() -> SchemaBuilder {
    let mut b = Schema::builder();
    b.add_text_field("id", STRING | STORED);
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    b.add_text_field("content", text);
    b.add_text_field("doc", STORED);
    b
}

/// The schema new indexes get: version 1 plus the indexed `source`.
fn schema() -> Schema {
    let mut b = schema_v1();
    b.add_text_field(SOURCE_FIELD, STRING);
    b.build()
}

/// Documents containing any of `terms`.
fn any_term(terms: impl IntoIterator<Item = Term>, option: IndexRecordOption) -> BooleanQuery {
    let clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .into_iter()
        .map(|t| {
            let q: Box<dyn Query> = Box::new(TermQuery::new(t, option));
            (Occur::Should, q)
        })
        .collect();
    BooleanQuery::new(clauses)
}

struct Collection {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// One writer at a time per collection; readers never wait for it.
    write: Mutex<()>,
}

impl Collection {
    fn new(index: Index, language: Language) -> Result<Self> {
        // Stop words go before stemming: questions are mostly "what is the ..." and those
        // words would otherwise match every chunk.
        let mut analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .dynamic();
        if let Some(stop_words) = StopWordFilter::new(language) {
            analyzer = analyzer.filter_dynamic(stop_words);
        }
        let analyzer = analyzer.filter_dynamic(Stemmer::new(language)).build();
        index.tokenizers().register(ANALYZER, analyzer);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_err("cannot open a BM25 index reader".into()))?;
        let fields = Fields::of(&index.schema())?;
        Ok(Self {
            index,
            reader,
            fields,
            write: Mutex::new(()),
        })
    }

    /// Run `edit` with a fresh writer, commit, and make the result visible to readers.
    fn edit(&self, edit: impl FnOnce(&IndexWriter, &Fields) -> Result<()>) -> Result<()> {
        let _one_writer = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut w: IndexWriter = self
            .index
            .writer_with_num_threads(1, WRITER_HEAP)
            .map_err(tantivy_err("cannot open a BM25 index writer".into()))?;
        edit(&w, &self.fields)?;
        w.commit()
            .map_err(tantivy_err("cannot commit the BM25 index".into()))?;
        self.reader
            .reload()
            .map_err(tantivy_err("cannot reload the BM25 index".into()))
    }

    fn add(&self, w: &IndexWriter, doc: &Document) -> Result<()> {
        if doc.id.is_empty() {
            return Err(Error::invalid_input(
                "a document without an id cannot be indexed",
            ));
        }
        let mut stored = doc.clone();
        stored.embedding = None;
        stored.score = None;
        let mut d = TantivyDocument::default();
        d.add_text(self.fields.id, &doc.id);
        d.add_text(self.fields.content, &doc.content);
        d.add_text(self.fields.doc, serde_json::to_string(&stored)?);
        let source = doc.metadata.get(SOURCE_FIELD).and_then(Value::as_str);
        if let (Some(f), Some(source)) = (self.fields.source, source) {
            d.add_text(f, source);
        }
        w.delete_term(Term::from_field_text(self.fields.id, &doc.id));
        w.add_document(d)
            .map_err(tantivy_err("cannot add to the BM25 index".into()))?;
        Ok(())
    }

    fn stored(&self, searcher: &tantivy::Searcher, addr: tantivy::DocAddress) -> Result<Document> {
        let d: TantivyDocument = searcher
            .doc(addr)
            .map_err(tantivy_err("cannot read a BM25 document".into()))?;
        let json = d
            .get_first(self.fields.doc)
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::internal("BM25 document without its stored body"))?;
        serde_json::from_str(json)
            .map_err(|e| Error::internal("BM25 stored document is corrupt").with_source(e))
    }

    /// Every stored document matching `filter`, up to `limit`. A filter on one `source`
    /// (a file's chunks: what ingestion asks) reads only that source's documents.
    fn scan(&self, filter: &Value, limit: usize) -> Result<Vec<Document>> {
        let searcher = self.reader.searcher();
        let by_source = filter
            .get(SOURCE_FIELD)
            .and_then(Value::as_str)
            .zip(self.fields.source)
            .map(|(s, f)| TermQuery::new(Term::from_field_text(f, s), IndexRecordOption::Basic));
        let candidates: &dyn Query = match &by_source {
            Some(q) => q,
            None => &AllQuery,
        };
        let mut addrs: Vec<_> = searcher
            .search(candidates, &DocSetCollector)
            .map_err(tantivy_err("cannot scan the BM25 index".into()))?
            .into_iter()
            .collect();
        addrs.sort();
        let mut out = Vec::new();
        for addr in addrs {
            if out.len() >= limit {
                break;
            }
            let d = self.stored(&searcher, addr)?;
            if matches(filter, &d.metadata) {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn query(&self, text: &str) -> Result<Option<BooleanQuery>> {
        let mut analyzer = self
            .index
            .tokenizer_for_field(self.fields.content)
            .map_err(tantivy_err("BM25 tokenizer missing".into()))?;
        let mut terms = Vec::new();
        let mut stream = analyzer.token_stream(text);
        while stream.advance() {
            let t = Term::from_field_text(self.fields.content, &stream.token().text);
            if !terms.contains(&t) {
                terms.push(t);
            }
        }
        if terms.is_empty() {
            return Ok(None);
        }
        Ok(Some(any_term(terms, IndexRecordOption::WithFreqs)))
    }

    fn search(
        &self,
        text: &str,
        k: usize,
        filter: Option<&Value>,
        min_score: Option<f64>,
    ) -> Result<Vec<Document>> {
        let Some(query) = self.query(text)? else {
            return Ok(Vec::new());
        };
        if k == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let total = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
        // With a filter, fetch deeper until k survivors or the hits run out.
        let mut depth = if filter.is_some() { k * 4 } else { k };
        loop {
            let hits = searcher
                .search(&query, &TopDocs::with_limit(depth).order_by_score())
                .map_err(tantivy_err("BM25 search failed".into()))?;
            let exhausted = hits.len() < depth || depth >= total;
            let mut out = Vec::with_capacity(k);
            for (score, addr) in &hits {
                let score = f64::from(*score);
                if min_score.is_some_and(|m| score < m) {
                    break;
                }
                let mut d = self.stored(&searcher, *addr)?;
                if filter.is_none_or(|f| matches(f, &d.metadata)) {
                    d.score = Some(score);
                    out.push(d);
                    if out.len() == k {
                        return Ok(out);
                    }
                }
            }
            if exhausted {
                return Ok(out);
            }
            depth = depth.saturating_mul(4);
        }
    }
}

/// Named collections of documents searchable by BM25. Cheap to clone (shared).
#[derive(Clone)]
pub struct Bm25Index {
    collections: Arc<RwLock<HashMap<String, Arc<Collection>>>>,
    dir: Option<PathBuf>,
    language: Language,
}

impl std::fmt::Debug for Bm25Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25Index")
            .field("dir", &self.dir)
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

const SUFFIX: &str = ".bm25";

impl Bm25Index {
    /// An index in memory only.
    pub fn in_memory() -> Self {
        Self {
            collections: Arc::default(),
            dir: None,
            language: Language::English,
        }
    }

    /// An index persisted in `dir` (one tantivy directory per collection, every change
    /// committed before the call returns); existing collections are opened.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with_language(dir, Language::English)
    }

    /// As [`Bm25Index::open`], stemming for `language`. The language must stay the same
    /// for the life of the directory: terms are stored stemmed.
    pub fn open_with_language(dir: impl Into<PathBuf>, language: Language) -> Result<Self> {
        let dir = dir.into();
        let mut cols = HashMap::new();
        for (name, path) in crate::index::collection_paths(&dir, SUFFIX)? {
            let c = Self::open_collection(&path, language)?;
            cols.insert(name, Arc::new(c));
        }
        Ok(Self {
            collections: Arc::new(RwLock::new(cols)),
            dir: Some(dir),
            language,
        })
    }

    /// The same index stemming for `language` (for an in-memory index; see
    /// [`Bm25Index::open_with_language`] for a persisted one).
    pub fn with_language(mut self, language: Language) -> Self {
        self.language = language;
        self
    }

    fn open_collection(path: &Path, language: Language) -> Result<Collection> {
        std::fs::create_dir_all(path).map_err(|e| {
            Error::internal(format!("cannot create {}", path.display())).with_source(e)
        })?;
        let dir = MmapDirectory::open(path).map_err(|e| {
            Error::internal(format!("cannot open {}", path.display())).with_source(e)
        })?;
        let corrupt = || format!("BM25 index {} is corrupt", path.display());
        // An existing index is opened with the schema it was written with (older ones lack
        // the `source` field and fall back to scanning).
        let exists = Index::exists(&dir).map_err(|e| Error::internal(corrupt()).with_source(e))?;
        let index = if exists {
            Index::open(dir).map_err(tantivy_err(corrupt()))?
        } else {
            Index::create(dir, schema(), tantivy::IndexSettings::default())
                .map_err(tantivy_err(corrupt()))?
        };
        Collection::new(index, language)
    }

    fn get(&self, name: &str) -> Option<Arc<Collection>> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn get_or_create(&self, name: &str) -> Result<Arc<Collection>> {
        crate::index::check_collection_name(name)?;
        if let Some(c) = self.get(name) {
            return Ok(c);
        }
        let mut g = self.collections.write().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = g.get(name) {
            return Ok(c.clone());
        }
        let c = match &self.dir {
            Some(dir) => {
                Self::open_collection(&dir.join(format!("{name}{SUFFIX}")), self.language)?
            }
            None => Collection::new(Index::create_in_ram(schema()), self.language)?,
        };
        let c = Arc::new(c);
        g.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// Collection names, sorted.
    pub fn collections(&self) -> Vec<String> {
        let g = self.collections.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = g.keys().cloned().collect();
        v.sort();
        v
    }

    /// Documents in a collection (0 if it does not exist).
    pub fn len(&self, collection: &str) -> usize {
        self.get(collection).map_or(0, |c| {
            usize::try_from(c.reader.searcher().num_docs()).unwrap_or(usize::MAX)
        })
    }

    /// True if the collection is missing or empty.
    pub fn is_empty(&self, collection: &str) -> bool {
        self.len(collection) == 0
    }

    /// Insert or replace documents (by id), in one commit.
    pub fn upsert(&self, collection: &str, docs: Vec<Document>) -> Result<()> {
        let c = self.get_or_create(collection)?;
        c.edit(|w, _| docs.iter().try_for_each(|d| c.add(w, d)))
    }

    /// Delete documents by id; returns how many existed.
    pub fn delete(&self, collection: &str, ids: &[String]) -> Result<usize> {
        let Some(c) = self.get(collection) else {
            return Ok(0);
        };
        if ids.is_empty() {
            return Ok(0);
        }
        // How many exist: one query for all ids (ids are unique in the index).
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        let terms = unique
            .iter()
            .map(|id| Term::from_field_text(c.fields.id, id));
        let n = c
            .reader
            .searcher()
            .search(
                &any_term(terms, IndexRecordOption::Basic),
                &tantivy::collector::Count,
            )
            .map_err(tantivy_err("BM25 lookup failed".into()))?;
        c.edit(|w, f| {
            for id in ids {
                w.delete_term(Term::from_field_text(f.id, id));
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// Delete documents whose metadata matches `filter`; returns how many.
    pub fn delete_where(&self, collection: &str, filter: &Value) -> Result<usize> {
        self.replace_where(collection, filter, Vec::new())
    }

    /// Up to `limit` stored documents whose metadata matches `filter`.
    pub fn find_where(
        &self,
        collection: &str,
        filter: &Value,
        limit: usize,
    ) -> Result<Vec<Document>> {
        match self.get(collection) {
            Some(c) => c.scan(filter, limit),
            None => Ok(Vec::new()),
        }
    }

    /// In one commit, delete the documents matching `filter` and insert `docs`: readers see
    /// all old or all new. Returns how many were deleted.
    pub fn replace_where(
        &self,
        collection: &str,
        filter: &Value,
        docs: Vec<Document>,
    ) -> Result<usize> {
        let removed = self.replace_many(collection, vec![(filter.clone(), docs)])?;
        Ok(removed.first().copied().unwrap_or(0))
    }

    /// [`replace_where`](Self::replace_where) for several `(filter, docs)` pairs in one
    /// commit (each commit adds a segment the merge policy must fold in again, so an
    /// ingestion writes many sources at once). Returns how many each filter deleted.
    pub fn replace_many(
        &self,
        collection: &str,
        groups: Vec<(Value, Vec<Document>)>,
    ) -> Result<Vec<usize>> {
        if groups.iter().all(|(_, d)| d.is_empty()) && self.get(collection).is_none() {
            return Ok(vec![0; groups.len()]);
        }
        let c = self.get_or_create(collection)?;
        let doomed = groups
            .iter()
            .map(|(filter, _)| c.scan(filter, usize::MAX))
            .collect::<Result<Vec<_>>>()?;
        c.edit(|w, f| {
            for d in doomed.iter().flatten() {
                w.delete_term(Term::from_field_text(f.id, &d.id));
            }
            groups
                .iter()
                .flat_map(|(_, docs)| docs)
                .try_for_each(|d| c.add(w, d))
        })?;
        Ok(doomed.iter().map(Vec::len).collect())
    }

    /// Drop a whole collection (and its directory).
    pub fn drop_collection(&self, collection: &str) -> Result<bool> {
        let removed = self
            .collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(collection);
        if let (Some(_), Some(dir)) = (&removed, &self.dir) {
            let path = dir.join(format!("{collection}{SUFFIX}"));
            std::fs::remove_dir_all(&path).map_err(|e| {
                Error::internal(format!("cannot remove {}", path.display())).with_source(e)
            })?;
        }
        Ok(removed.is_some())
    }

    /// The `k` best BM25 matches for `query` (score = BM25), best first, that match
    /// `filter` and score at least `min_score`.
    pub fn search(
        &self,
        collection: &str,
        query: &str,
        k: usize,
        filter: Option<&Value>,
        min_score: Option<f64>,
    ) -> Result<Vec<Document>> {
        match self.get(collection) {
            Some(c) => c.search(query, k, filter, min_score),
            None => Ok(Vec::new()),
        }
    }

    /// The directory this index persists to, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

/// Stores documents in a collection of a [`Bm25Index`] (`IndexOptions::index` overrides the
/// collection). No embedding: the text itself is indexed.
#[derive(Debug, Clone)]
pub struct Bm25Indexer {
    index: Bm25Index,
    collection: String,
}

impl Bm25Indexer {
    /// Store into `collection` of `index`.
    pub fn new(index: Bm25Index, collection: impl Into<String>) -> Self {
        Self {
            index,
            collection: collection.into(),
        }
    }
}

impl Indexer for Bm25Indexer {
    fn store<'a>(
        &'a self,
        docs: Vec<Document>,
        o: &'a IndexOptions,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let collection = o.index.as_deref().unwrap_or(&self.collection).to_string();
            let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
            let index = self.index.clone();
            // tantivy commits fsync: keep them off the async workers.
            tokio::task::spawn_blocking(move || index.upsert(&collection, docs))
                .await
                .map_err(|e| Error::internal("BM25 indexing task failed").with_source(e))??;
            Ok(ids)
        })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "Bm25Index".into()
    }
}

/// Searches a collection of a [`Bm25Index`]: top-k (default 4), score threshold (on the raw
/// BM25 score) and metadata filter from [`RetrieveOptions`] (`index` overrides the
/// collection).
#[derive(Debug, Clone)]
pub struct Bm25Retriever {
    index: Bm25Index,
    collection: String,
    top_k: usize,
}

impl Bm25Retriever {
    /// Search `collection` of `index`.
    pub fn new(index: Bm25Index, collection: impl Into<String>) -> Self {
        Self {
            index,
            collection: collection.into(),
            top_k: 4,
        }
    }

    /// Default number of results.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }
}

impl Retriever for Bm25Retriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        o: &'a RetrieveOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move {
            let collection = o.index.as_deref().unwrap_or(&self.collection);
            self.index.search(
                collection,
                query,
                o.top_k.unwrap_or(self.top_k),
                o.filter.as_ref(),
                o.score_threshold,
            )
        })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "Bm25Index".into()
    }
}

#[cfg(test)]
mod tests;
