//! OpenTelemetry export: a request's spans reach an OTLP/HTTP collector (a real HTTP server
//! here that decodes the protobuf payloads), continuing the caller's `traceparent`, with the
//! run's components as GenAI spans inside; the response's `traceparent` names the exported
//! span. Its own test binary: it installs the process's subscriber. The chat model is the
//! echo fake of common/ (the test is about the spans).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use common::TestServer;
use eino_server::config::TelemetryConfig;
use eino_server::config::{OtlpConfig, OtlpProtocol};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::json;

/// A span as the collector saw it.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    service: String,
    end_ns: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn collector() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: Bytes| async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                assert_eq!(headers["x-collector-key"], "k-123");
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref())
                        .map(|v| format!("{:?}", v.value))
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for sp in ss.spans {
                            s2.lock().unwrap().push(Seen {
                                name: sp.name,
                                trace_id: hex(&sp.trace_id),
                                span_id: hex(&sp.span_id),
                                parent_span_id: hex(&sp.parent_span_id),
                                service: service.clone(),
                                end_ns: sp.end_time_unix_nano,
                            });
                        }
                    }
                }
                axum::http::StatusCode::OK
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn wait_for(seen: &Mutex<Vec<Seen>>, what: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    for _ in 0..100 {
        let now = seen.lock().unwrap().clone();
        if what(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the collector did not get the spans: {:#?}",
        seen.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_continue_the_callers_trace_and_reach_the_collector() {
    let (url, seen) = collector().await;
    std::env::set_var("EINO_TEST_COLLECTOR_KEY", "k-123");
    let telemetry = eino_server::telemetry::init(&TelemetryConfig {
        log_format: "json".into(),
        log_level: "info".into(),
        record_runs: true,
        record_runs_sample: 1.0,
        otlp: Some(OtlpConfig {
            endpoint: url,
            protocol: OtlpProtocol::HttpProtobuf,
            headers_env: [(
                "x-collector-key".to_string(),
                "EINO_TEST_COLLECTOR_KEY".to_string(),
            )]
            .into(),
            service_name: "eino-test".into(),
            sample_ratio: 1.0,
            timeout_secs: Some(5),
        }),
        ..TelemetryConfig::default()
    })
    .unwrap();
    let s = TestServer::default().await;

    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let r = s
        .http
        .post(s.url("/api/v1/chat"))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let back = r.headers()["traceparent"].to_str().unwrap().to_string();
    let parts: Vec<&str> = back.split('-').collect();
    assert_eq!(parts[1], caller_trace, "{back}");
    let server_span = parts[2].to_string();

    // A streamed answer: the request's span stays open until the body's last event.
    let streamed_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let r = s
        .http
        .post(s.url("/api/v1/chat"))
        .header(
            "traceparent",
            format!("00-{streamed_trace}-{caller_span}-01"),
        )
        .json(&json!({"message": "hello again", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = r.text().await.unwrap();
    assert!(events.contains("event: done"), "{events}");

    // Without a caller's trace, the response names the new trace that was exported.
    let r = s.http.get(s.url("/v1/models")).send().await.unwrap();
    let fresh = r.headers()["traceparent"].to_str().unwrap().to_string();
    let fresh_trace = fresh.split('-').nth(1).unwrap().to_string();

    telemetry.flush();
    let spans = wait_for(&seen, |spans| {
        spans.iter().any(|s| s.trace_id == fresh_trace)
            && spans.iter().any(|s| s.name.starts_with("chat"))
            && ["POST /api/v1/chat", "chat"].iter().all(|name| {
                spans
                    .iter()
                    .any(|s| s.name.starts_with(name) && s.trace_id == streamed_trace)
            })
    })
    .await;
    let request = spans
        .iter()
        .find(|s| s.name == "POST /api/v1/chat")
        .unwrap_or_else(|| panic!("no request span: {spans:#?}"));
    assert_eq!(request.trace_id, caller_trace);
    assert_eq!(request.parent_span_id, caller_span);
    assert_eq!(request.span_id, server_span);
    assert!(request.service.contains("eino-test"), "{}", request.service);
    // The run's components: the application graph inside the request, the model inside it.
    let graph = spans
        .iter()
        .find(|s| s.name == "invoke_graph assistant")
        .unwrap_or_else(|| panic!("no graph span: {spans:#?}"));
    assert_eq!(graph.trace_id, caller_trace);
    assert_eq!(graph.parent_span_id, request.span_id);
    let model = spans
        .iter()
        .find(|s| s.name.starts_with("chat") && s.trace_id == caller_trace)
        .unwrap_or_else(|| panic!("no model span: {spans:#?}"));
    assert_ne!(model.parent_span_id, "0000000000000000");
    let in_stream = |name: &str| {
        spans
            .iter()
            .find(|s| s.name.starts_with(name) && s.trace_id == streamed_trace)
            .unwrap_or_else(|| panic!("no {name} span in the streamed trace: {spans:#?}"))
    };
    let (request, model) = (in_stream("POST /api/v1/chat"), in_stream("chat"));
    assert!(
        request.end_ns >= model.end_ns,
        "the request span ended before its streamed model call: {request:?} {model:?}"
    );
    let models = spans.iter().find(|s| s.name == "GET /v1/models").unwrap();
    assert_eq!(models.trace_id, fresh_trace);
    assert_eq!(models.parent_span_id, "", "a new trace has no parent");
}
