//! `/openapi.json`: an OpenAPI 3.1 description of the endpoints, built from one table so
//! it cannot drift from the router silently (a test compares the two). Request bodies and
//! query strings are described from the types the handlers deserialize (their JSON
//! schemas, from `schemars`), so client generators and fuzzers send what the server reads;
//! public endpoints (probes, metrics, this document) need no key.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// A schema of `T` in `g` (a reference into `components.schemas` for named types).
type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// An endpoint's request body.
#[derive(Clone, Copy)]
pub enum Body {
    /// None.
    None,
    /// JSON of a type.
    Json(SchemaFn),
    /// `multipart/form-data` file parts (uploads).
    Multipart,
}

/// One endpoint of the router.
#[derive(Clone, Copy)]
pub struct Endpoint {
    /// `get`, `post` or `delete`.
    pub method: &'static str,
    /// The path, `{name}` for parameters.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Served without credentials.
    pub public: bool,
    /// Its request body.
    pub body: Body,
    /// Its query string's type, if it reads one.
    pub query: Option<SchemaFn>,
}

/// Every endpoint: the router's table, described.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "post",
        path: "/v1/chat/completions",
        summary: "OpenAI-compatible chat completion (JSON or SSE with stream=true)",
        public: false,
        body: Body::Json(schema::<crate::api::openai::ChatRequest>),
        query: None,
    },
    Endpoint {
        method: "post",
        path: "/v1/embeddings",
        summary: "OpenAI-compatible embeddings",
        public: false,
        body: Body::Json(schema::<crate::api::openai::EmbeddingsRequest>),
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/v1/models",
        summary: "Applications, chat models and embedders as model ids",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/chat",
        summary: "Chat in a session (history persisted); SSE with stream=true",
        public: false,
        body: Body::Json(schema::<crate::api::sessions::ChatBody>),
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/sessions",
        summary: "List sessions",
        public: false,
        body: Body::None,
        query: Some(schema::<crate::api::wire::ListQuery>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/sessions/{id}",
        summary: "A session with its messages",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "delete",
        path: "/api/v1/sessions/{id}",
        summary: "Delete a session",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/knowledge-bases",
        summary: "List knowledge bases",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/knowledge-bases",
        summary: "Create a knowledge base",
        public: false,
        body: Body::Json(schema::<crate::api::knowledge::KbBody>),
        query: None,
    },
    Endpoint {
        method: "delete",
        path: "/api/v1/knowledge-bases/{name}",
        summary: "Delete a knowledge base and its chunks",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/knowledge-bases/{name}/documents",
        summary: "List documents",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/knowledge-bases/{name}/documents",
        summary: "Upload files (multipart); starts an ingestion job",
        public: false,
        body: Body::Multipart,
        query: None,
    },
    Endpoint {
        method: "delete",
        path: "/api/v1/knowledge-bases/{name}/documents/{source}",
        summary: "Delete a document and its chunks",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/knowledge-bases/{name}/search",
        summary: "Search a knowledge base",
        public: false,
        body: Body::Json(schema::<crate::api::knowledge::SearchBody>),
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/jobs/{id}",
        summary: "An ingestion job's progress",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/jobs/{id}/events",
        summary: "An ingestion job's progress as SSE",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/runs",
        summary: "List runs",
        public: false,
        body: Body::None,
        query: Some(schema::<crate::api::wire::ListQuery>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/runs/{id}",
        summary: "A run's trace: nodes, timings, inputs/outputs, tokens",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/runs/interrupted",
        summary: "Runs waiting for a decision (tool approvals)",
        public: false,
        body: Body::None,
        query: Some(schema::<crate::api::wire::ListQuery>),
    },
    Endpoint {
        method: "get",
        path: "/api/v1/runs/interrupted/{id}",
        summary: "One waiting run and its pending tool calls",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "delete",
        path: "/api/v1/runs/interrupted/{id}",
        summary: "Give up a waiting run (its checkpoint is removed)",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/runs/{id}/resume",
        summary: "Resume a waiting run with a decision per pending call; SSE with stream=true",
        public: false,
        body: Body::Json(schema::<crate::api::runs::ResumeBody>),
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/applications",
        summary: "List applications",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/applications/{id}/graph",
        summary: "An application's topology (JSON and Mermaid)",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "post",
        path: "/mcp",
        summary: "Model Context Protocol over Streamable HTTP (JSON-RPC, stateless): ask_<app> and search_knowledge as tools, knowledge bases as resources (docs/mcp.md)",
        public: false,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/health",
        summary: "Liveness",
        public: true,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/ready",
        summary: "Readiness (store reachable, not shutting down)",
        public: true,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        public: true,
        body: Body::None,
        query: None,
    },
    Endpoint {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        public: true,
        body: Body::None,
        query: None,
    },
];

/// The query parameters of a query-string type: one per property of its schema.
fn query_params(f: SchemaFn, g: &mut SchemaGenerator) -> Vec<Value> {
    let root = f(g);
    let inline = match root.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            g.definitions().get(name).cloned().unwrap_or(Value::Null)
        }
        None => root.to_value(),
    };
    let required: Vec<&str> = inline["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    inline["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(name, schema)| {
                    json!({ "name": name, "in": "query", "required": required.contains(&name.as_str()),
                            "description": schema.get("description"), "schema": schema })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The document.
pub fn document() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let mut params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if let Some(q) = e.query {
            params.extend(query_params(q, &mut g));
        }
        let id = e
            .path
            .trim_matches('/')
            .replace(['/', '{', '}', '-', '.'], "_");
        let mut op = json!({
            "summary": e.summary,
            "operationId": format!("{}_{id}", e.method),
            "parameters": params,
            "responses": {
                "200": { "description": "OK" },
                "4XX": { "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        });
        match e.body {
            Body::None => {}
            Body::Json(f) => {
                op["requestBody"] = json!({ "required": true,
                    "content": { "application/json": { "schema": f(&mut g).to_value() } } });
            }
            Body::Multipart => {
                op["requestBody"] = json!({ "required": true, "content": { "multipart/form-data": {
                    "schema": { "type": "object", "required": ["file"], "properties": { "file": {
                        "type": "array", "description": "One part per file, each with a file name",
                        "items": { "type": "string", "contentMediaType": "application/octet-stream" } } } } } } });
            }
        }
        if e.public {
            op["security"] = json!([]);
        }
        let entry = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        entry[e.method] = op;
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    schemas.insert(
        "Error".into(),
        json!({ "type": "object", "properties": { "error": { "type": "object",
            "properties": { "message": { "type": "string" }, "type": { "type": "string" },
                            "code": { "type": ["string", "null"] } } } } }),
    );
    json!({
        "openapi": "3.1.0",
        "info": { "title": "eino", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas,
        },
        "security": [{ "bearer": [] }],
    })
}
