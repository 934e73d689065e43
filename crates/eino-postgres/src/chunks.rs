//! Knowledge-base chunks in PostgreSQL (table `eino_chunks`): vectors with pgvector and
//! keywords with PostgreSQL's full-text search, so every replica ingests into and searches
//! the same chunks.
//!
//! The vector column has no fixed size (knowledge bases may use different embedders), and
//! pgvector indexes only fixed sizes, so each size gets its own partial HNSW index over
//! `embedding::vector(N)`, created the first time chunks of that size are written. A
//! search orders by the same expression: PostgreSQL then walks the graph (with pgvector's
//! iterative scan, so a filter on one knowledge base still fills the limit) or, for a
//! small knowledge base, reads its rows and sorts them exactly, whichever it estimates
//! cheaper.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use eino::schema::Document;
use eino::{Error, Result};
use eino_rag::load::keys;
use eino_rag::{ChunkQuery, ChunkStore};
use futures_util::future::BoxFuture;
use pgvector::Vector;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::pool::{error as pg, Postgres};

/// Created at start when the chunks are in the database (idempotent; needs the pgvector
/// extension installed on the server, and the right to create it if it is not yet).
const SCHEMA: &str = "
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS eino_chunks (
    collection TEXT NOT NULL, id TEXT NOT NULL, source TEXT NOT NULL,
    content TEXT NOT NULL, metadata JSONB NOT NULL, embedding vector NOT NULL,
    keywords tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    PRIMARY KEY (collection, id));
-- pgvector stores vectors out of line (TOAST) by default once a row passes 2 kB, and a
-- search then fetches every vector from the TOAST table: MAIN keeps them in the row. The
-- same for the keywords, which ranking reads for every match.
ALTER TABLE eino_chunks ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE eino_chunks ALTER COLUMN keywords SET STORAGE MAIN;
CREATE INDEX IF NOT EXISTS eino_chunks_by_source ON eino_chunks (collection, source);
CREATE INDEX IF NOT EXISTS eino_chunks_keywords ON eino_chunks USING gin (keywords);
";

/// The chunks of every knowledge base in the store's PostgreSQL database.
#[derive(Clone)]
pub struct PostgresChunks {
    store: Postgres,
    /// Vector sizes whose HNSW index this process has made sure of.
    indexed: Arc<Mutex<HashSet<usize>>>,
    /// Chunks this process wrote since it last refreshed the table's statistics.
    written: Arc<AtomicUsize>,
}

/// Refresh the planner's statistics after this many chunks written. Autovacuum would,
/// later: until then the planner, believing a knowledge base small, sorts all its rows
/// instead of walking the HNSW graph (31 ms instead of 0.6 ms for 20 000 chunks).
const ANALYZE_EVERY: usize = 2000;

impl std::fmt::Debug for PostgresChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresChunks").finish_non_exhaustive()
    }
}

impl PostgresChunks {
    /// The chunk store in `db`, creating its table (and the pgvector extension) if
    /// needed; without pgvector on the server this fails.
    pub async fn open(db: Postgres) -> Result<Self> {
        // Under the migrations' lock: two replicas starting at once would otherwise race
        // on CREATE EXTENSION.
        db.locked(SCHEMA).await.map_err(|e| {
            Error::invalid_input(format!(
                "chunks in PostgreSQL need the pgvector extension on the database server: {e}"
            ))
        })?;
        Ok(Self {
            store: db,
            indexed: Arc::default(),
            written: Arc::default(),
        })
    }
}

/// A metadata filter (the in-process index's: a value for equality, `{"$in": [..]}`,
/// `{"$ne": v}`) as SQL conditions on the `metadata` column, each starting with ` AND `,
/// and their parameters, numbered from `$first`. Keys and values are parameters, never
/// put in the statement.
fn filter_sql(
    filter: Option<&serde_json::Value>,
    first: usize,
) -> (String, Vec<serde_json::Value>) {
    use serde_json::{json, Value};
    let mut sql = String::new();
    let mut values = Vec::new();
    let Some(conds) = filter.and_then(Value::as_object) else {
        return (sql, values);
    };
    for (key, cond) in conds {
        let n = first + values.len();
        match cond {
            Value::Object(op) if op.contains_key("$in") => {
                let options = op["$in"].as_array().cloned().unwrap_or_default();
                sql.push_str(&format!(
                    " AND metadata -> (${n}::jsonb ->> 0) IN \
                     (SELECT jsonb_array_elements(${}::jsonb))",
                    n + 1
                ));
                values.push(json!([key]));
                values.push(Value::Array(options));
            }
            Value::Object(op) if op.contains_key("$ne") => {
                sql.push_str(&format!(" AND NOT (metadata @> ${n}::jsonb)"));
                values.push(json!({ key: op["$ne"] }));
            }
            want => {
                sql.push_str(&format!(" AND metadata @> ${n}::jsonb"));
                values.push(json!({ key: want }));
            }
        }
    }
    (sql, values)
}

/// A stored chunk (columns id, content, metadata, score) as a scored document.
fn document(row: &Row, score: f64) -> Document {
    let metadata = match row.get::<_, serde_json::Value>(2) {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    Document {
        id: row.get(0),
        content: row.get(1),
        metadata,
        score: Some(score),
        embedding: None,
    }
}

/// A full-text query matching any of the words of `query` (BM25-like recall: a chunk with
/// some of the terms still ranks), for `websearch_to_tsquery`, which never fails to parse.
fn any_word(query: &str) -> String {
    query
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c == '"' || c == '-'))
        .filter(|w| !w.is_empty() && !w.eq_ignore_ascii_case("or"))
        .collect::<Vec<_>>()
        .join(" or ")
}

impl PostgresChunks {
    /// Write `chunks` into `collection` in one transaction: replacing every chunk of
    /// source `replace` when given (all old or all new), else upserting by id. Returns how
    /// many chunks were removed.
    async fn write(
        &self,
        collection: &str,
        replace: Option<&str>,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> Result<usize> {
        if let Some((d, v)) = chunks
            .iter()
            .find(|(_, v)| v.is_empty() || v.iter().any(|x| !x.is_finite()))
        {
            return Err(Error::invalid_input(format!(
                "chunk {} has an empty or non-finite vector ({} dimensions)",
                d.id,
                v.len()
            )));
        }
        if let Some((_, v)) = chunks.first() {
            self.ensure_index(v.len()).await?;
        }
        let mut c = self.store.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        if let Some((_, v)) = chunks.first() {
            // One collection holds one embedding size, as the in-process index does.
            let other = tx
                .query_opt(
                    "SELECT vector_dims(embedding) FROM eino_chunks \
                         WHERE collection = $1 AND source <> $2 LIMIT 1",
                    &[&collection, &replace.unwrap_or("")],
                )
                .await
                .map_err(pg)?;
            if let Some(dims) = other.map(|r| r.get::<_, i32>(0)) {
                if usize::try_from(dims).ok() != Some(v.len()) {
                    return Err(Error::invalid_input(format!(
                        "collection '{collection}' holds {dims}-dimensional vectors, not {}",
                        v.len()
                    )));
                }
            }
        }
        let removed = match replace {
            Some(source) => tx
                .execute(
                    "DELETE FROM eino_chunks WHERE collection = $1 AND source = $2",
                    &[&collection, &source],
                )
                .await
                .map_err(pg)?,
            None => 0,
        };
        let insert = tx
            .prepare(
                "INSERT INTO eino_chunks (collection, id, source, content, metadata, embedding) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (collection, id) DO UPDATE SET \
                     source = excluded.source, content = excluded.content, \
                     metadata = excluded.metadata, embedding = excluded.embedding",
            )
            .await
            .map_err(pg)?;
        // Pipelined on the one connection: the inserts go out without waiting for
        // each other's answers.
        let rows: Vec<_> = chunks
            .into_iter()
            .map(|(d, v)| {
                // A replaced source's chunks are that source's; an upserted chunk's
                // source is its metadata's, else its own id.
                let source = replace
                    .map(str::to_string)
                    .or_else(|| {
                        d.metadata
                            .get(keys::SOURCE)
                            .and_then(|s| s.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| d.id.clone());
                (
                    d.id,
                    source,
                    d.content,
                    serde_json::Value::Object(d.metadata),
                    Vector::from(v),
                )
            })
            .collect();
        let (t, insert) = (&tx, &insert);
        futures_util::future::try_join_all(rows.iter().map(
            |(id, source, content, meta, v)| async move {
                t.execute(insert, &[&collection, id, source, content, meta, v])
                    .await
            },
        ))
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        drop(c);
        let written = self.written.fetch_add(rows.len(), Ordering::Relaxed) + rows.len();
        if written >= ANALYZE_EVERY {
            self.written.store(0, Ordering::Relaxed);
            // The chunks are committed: a failure here only leaves stale statistics.
            let analyzed = match self.store.client().await {
                Ok(c) => c.batch_execute("ANALYZE eino_chunks").await.map_err(pg),
                Err(e) => Err(e),
            };
            if let Err(e) = analyzed {
                tracing::warn!(error = %e, "cannot refresh the chunk table's statistics");
            }
        }
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    /// Create the HNSW index of `dims`-sized vectors unless this process already did.
    /// Under the migrations' lock, so replicas writing their first chunks at once do not
    /// race on the index name; `IF NOT EXISTS` makes it cheap when another one made it.
    async fn ensure_index(&self, dims: usize) -> Result<()> {
        if self
            .indexed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&dims)
        {
            return Ok(());
        }
        // `dims` is a number we computed, never user text: safe to put in the statement.
        self.store
            .locked(&format!(
                "CREATE INDEX IF NOT EXISTS eino_chunks_hnsw_{dims} ON eino_chunks \
                 USING hnsw ((embedding::vector({dims})) vector_cosine_ops) \
                 WHERE vector_dims(embedding) = {dims}"
            ))
            .await?;
        self.indexed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dims);
        Ok(())
    }
}

impl ChunkStore for PostgresChunks {
    fn source_hash<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let row = self
                .store
                .client()
                .await?
                .query_opt(
                    "SELECT metadata->>$3 FROM eino_chunks WHERE collection = $1 AND source = $2 LIMIT 1",
                    &[&collection, &source, &keys::CONTENT_HASH],
                )
                .await
                .map_err(pg)?;
            Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
        })
    }

    fn replace_source<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<usize>> {
        Box::pin(self.write(collection, Some(source), chunks))
    }

    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.write(collection, None, chunks).await.map(drop) })
    }

    fn drop_collection<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let n = self
                .store
                .client()
                .await?
                .execute(
                    "DELETE FROM eino_chunks WHERE collection = $1",
                    &[&collection],
                )
                .await
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn is_empty<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let row = self
                .store
                .client()
                .await?
                .query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM eino_chunks WHERE collection = $1)",
                    &[&collection],
                )
                .await
                .map_err(pg)?;
            Ok(row.get(0))
        })
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        query: ChunkQuery<'a>,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move {
            let (vector, k, min_score) = (query.vector, query.k, query.min_score);
            if vector.is_empty() || vector.iter().any(|x| !x.is_finite()) {
                return Err(Error::invalid_input(format!(
                    "query vector has {} dimensions (all must be finite)",
                    vector.len()
                )));
            }
            let q = Vector::from(vector.to_vec());
            let limit = i64::try_from(k).unwrap_or(i64::MAX);
            let dims = vector.len();
            let c = self.store.client().await?;
            // The expressions match the partial index's (`dims` is a number, not input).
            let (filter, values) = filter_sql(query.filter, 4);
            let sql = format!(
                "SELECT id, content, metadata, 1 - (embedding::vector({dims}) <=> $2) FROM eino_chunks \
                 WHERE collection = $1 AND vector_dims(embedding) = {dims}{filter} \
                 ORDER BY embedding::vector({dims}) <=> $2 LIMIT $3"
            );
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&collection, &q, &limit];
            params.extend(values.iter().map(|v| v as &(dyn ToSql + Sync)));
            let rows = c.query(&sql, &params).await.map_err(pg)?;
            if rows.is_empty() {
                // A collection holds one size (writes check it), so no row of this size
                // means it is empty or holds another size: answer the latter with the
                // error the in-process index gives, not with nothing.
                let stored = c
                    .query_opt(
                        "SELECT vector_dims(embedding) FROM eino_chunks WHERE collection = $1 LIMIT 1",
                        &[&collection],
                    )
                    .await
                    .map_err(pg)?;
                if let Some(d) = stored.map(|r| r.get::<_, i32>(0)) {
                    if usize::try_from(d).ok() != Some(dims) {
                        return Err(Error::invalid_input(format!(
                            "query vector has {dims} dimensions; collection '{collection}' holds {d}"
                        )));
                    }
                }
            }
            let mut hits: Vec<Document> = rows
                .iter()
                .map(|r| document(r, r.get::<_, Option<f64>>(3).unwrap_or(0.0)))
                .filter(|d| min_score.is_none_or(|m| d.score.unwrap_or(0.0) >= m))
                .collect();
            // An iterative index scan returns nearly, not exactly, in order.
            hits.sort_by(|a, b| {
                b.score
                    .unwrap_or(0.0)
                    .total_cmp(&a.score.unwrap_or(0.0))
                    .then_with(|| a.id.cmp(&b.id))
            });
            Ok(hits)
        })
    }

    fn keyword_search<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Document>>>> {
        Box::pin(async move {
            let words = any_word(query);
            if words.is_empty() {
                return Ok(Some(Vec::new()));
            }
            let limit = i64::try_from(k).unwrap_or(i64::MAX);
            let rows = self
                .store
                .client()
                .await?
                .query(
                    "SELECT id, content, metadata, ts_rank(keywords, q, 1) AS rank \
                     FROM eino_chunks, websearch_to_tsquery('english', $2) q \
                     WHERE collection = $1 AND keywords @@ q ORDER BY rank DESC, id LIMIT $3",
                    &[&collection, &words, &limit],
                )
                .await
                .map_err(pg)?;
            Ok(Some(
                rows.iter()
                    .map(|r| document(r, f64::from(r.get::<_, f32>(3))))
                    .collect(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::any_word;

    #[test]
    fn keyword_queries_match_any_word_and_never_negate() {
        assert_eq!(any_word("rust borrow checker"), "rust or borrow or checker");
        assert_eq!(any_word("  -not \"quoted\" OR or  "), "not or quoted");
        assert_eq!(any_word("   "), "");
    }
}
