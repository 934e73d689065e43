//! `/openapi.json`: an OpenAPI 3.1 description of the endpoints, built from one table so
//! it cannot drift from the router silently (a test compares the two).

use serde_json::{json, Map, Value};

/// `(method, path, summary)` of every endpoint.
pub const ENDPOINTS: &[(&str, &str, &str)] = &[
    (
        "post",
        "/v1/chat/completions",
        "OpenAI-compatible chat completion (JSON or SSE with stream=true)",
    ),
    ("post", "/v1/embeddings", "OpenAI-compatible embeddings"),
    (
        "get",
        "/v1/models",
        "Applications, chat models and embedders as model ids",
    ),
    (
        "post",
        "/api/v1/chat",
        "Chat in a session (history persisted); SSE with stream=true",
    ),
    ("get", "/api/v1/sessions", "List sessions"),
    (
        "get",
        "/api/v1/sessions/{id}",
        "A session with its messages",
    ),
    ("delete", "/api/v1/sessions/{id}", "Delete a session"),
    ("get", "/api/v1/knowledge-bases", "List knowledge bases"),
    ("post", "/api/v1/knowledge-bases", "Create a knowledge base"),
    (
        "delete",
        "/api/v1/knowledge-bases/{name}",
        "Delete a knowledge base and its chunks",
    ),
    (
        "get",
        "/api/v1/knowledge-bases/{name}/documents",
        "List documents",
    ),
    (
        "post",
        "/api/v1/knowledge-bases/{name}/documents",
        "Upload files (multipart); starts an ingestion job",
    ),
    (
        "delete",
        "/api/v1/knowledge-bases/{name}/documents/{source}",
        "Delete a document and its chunks",
    ),
    (
        "post",
        "/api/v1/knowledge-bases/{name}/search",
        "Search a knowledge base",
    ),
    ("get", "/api/v1/jobs/{id}", "An ingestion job's progress"),
    (
        "get",
        "/api/v1/jobs/{id}/events",
        "An ingestion job's progress as SSE",
    ),
    ("get", "/api/v1/runs", "List runs"),
    (
        "get",
        "/api/v1/runs/{id}",
        "A run's trace: nodes, timings, inputs/outputs, tokens",
    ),
    (
        "get",
        "/api/v1/runs/interrupted",
        "Runs waiting for a decision (tool approvals)",
    ),
    (
        "get",
        "/api/v1/runs/interrupted/{id}",
        "One waiting run and its pending tool calls",
    ),
    (
        "delete",
        "/api/v1/runs/interrupted/{id}",
        "Give up a waiting run (its checkpoint is removed)",
    ),
    (
        "post",
        "/api/v1/runs/{id}/resume",
        "Resume a waiting run with a decision per pending call; SSE with stream=true",
    ),
    ("get", "/api/v1/applications", "List applications"),
    (
        "get",
        "/api/v1/applications/{id}/graph",
        "An application's topology (JSON and Mermaid)",
    ),
    ("get", "/health", "Liveness"),
    (
        "get",
        "/ready",
        "Readiness (store reachable, not shutting down)",
    ),
    ("get", "/metrics", "Prometheus metrics"),
    ("get", "/openapi.json", "This document"),
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary) in ENDPOINTS {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        entry[*method] = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": { "description": "OK" },
                "4XX": { "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        });
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "eino", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": { "type": "object", "properties": { "error": { "type": "object",
                "properties": { "message": { "type": "string" }, "type": { "type": "string" },
                                "code": { "type": ["string", "null"] } } } } } }
        },
        "security": [{ "bearer": [] }],
    })
}
