//! Wire tests against a local mock server with recorded-shape fixtures. The scenarios are
//! written once over a [`Family`] (how a provider family spells each scenario on the wire),
//! so a new provider is checked by the same suite: implement `Family` and add one line per
//! scenario at the bottom.

use std::sync::Arc;
use std::time::Duration;

use eino::component::{ChatModel, ChatOptions};
use eino::schema::{Concat, Message, Role, ToolInfo};
use eino::ErrorKind;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// How one provider family spells each scenario.
trait Family {
    fn model(server: &MockServer) -> Arc<dyn ChatModel>;
    fn path() -> &'static str;
    fn plain() -> Value;
    fn stream_text() -> String;
    fn tool_calls() -> Value;
    fn stream_tool_calls() -> String;
    fn reasoning_stream() -> String;
    fn cut_stream() -> String;
    fn error_body(message: &str, code: &str) -> Value;
}

fn sse(events: &[Value]) -> String {
    let mut s: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    s.push_str("data: [DONE]\n\n");
    s
}

struct OpenAi;

impl Family for OpenAi {
    fn model(server: &MockServer) -> Arc<dyn ChatModel> {
        let cfg = eino_openai::OpenAiConfig::new("gpt-test")
            .with_base_url(format!("{}/v1", server.uri()))
            .with_api_key(Some("sk-test".into()))
            .with_retry_base_delay(Duration::from_millis(1));
        Arc::new(eino_openai::OpenAiChatModel::new(cfg).unwrap())
    }
    fn path() -> &'static str {
        "/v1/chat/completions"
    }
    fn plain() -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
            "system_fingerprint": "fp_x", "service_tier": "some-new-tier",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris.", "refusal": null, "annotations": []},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
                      "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 0}}
        })
    }
    fn stream_text() -> String {
        sse(&[
            json!({"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}),
            json!({"id":"c","choices":[{"index":0,"delta":{"content":"Par"},"finish_reason":null}]}),
            json!({"id":"c","choices":[{"index":0,"delta":{"content":"is."},"finish_reason":""}]}),
            json!({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
            // Usage only in the last chunk, with no choices.
            json!({"id":"c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}),
        ])
    }
    fn tool_calls() -> Value {
        json!({
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]}}]
        })
    }
    fn stream_tool_calls() -> String {
        sse(&[
            json!({"choices":[{"index":0,"delta":{"role":"assistant","content":"Checking."}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":""}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"weather","arguments":"{\"ci"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"ty\":\"Rome\"}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
        ])
    }
    fn reasoning_stream() -> String {
        sse(&[
            json!({"choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Think"}}]}),
            json!({"choices":[{"index":0,"delta":{"content":null,"reasoning_content":"ing."}}]}),
            json!({"choices":[{"index":0,"delta":{"content":"42"},"finish_reason":"stop"}]}),
        ])
    }
    fn cut_stream() -> String {
        let events = [
            json!({"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}),
            json!({"choices":[{"index":0,"delta":{"content":"lo"}}]}),
        ];
        events.iter().map(|e| format!("data: {e}\n\n")).collect()
    }
    fn error_body(message: &str, code: &str) -> Value {
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}})
    }
}

struct Anthropic;

fn events(list: &[Value]) -> String {
    list.iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

impl Family for Anthropic {
    fn model(server: &MockServer) -> Arc<dyn ChatModel> {
        let cfg = eino_openai::AnthropicConfig::new("claude-test")
            .with_base_url(server.uri())
            .with_api_key(Some("sk-ant".into()))
            .with_retry_base_delay(Duration::from_millis(1));
        Arc::new(eino_openai::AnthropicChatModel::new(cfg).unwrap())
    }
    fn path() -> &'static str {
        "/v1/messages"
    }
    fn plain() -> Value {
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": "Paris.", "citations": null}],
            "stop_reason": "stop", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 2, "service_tier": "standard"}
        })
    }
    fn stream_text() -> String {
        events(&[
            json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"usage":{"input_tokens":12,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
            json!({"type":"ping"}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Par"}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"is."}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"message_delta","delta":{"stop_reason":"stop","stop_sequence":null},"usage":{"output_tokens":2}}),
            json!({"type":"message_stop"}),
        ])
    }
    fn tool_calls() -> Value {
        json!({
            "type": "message", "role": "assistant", "stop_reason": "tool_calls",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}}
            ],
            "usage": {"input_tokens": 5, "output_tokens": 9}
        })
    }
    fn stream_tool_calls() -> String {
        events(&[
            json!({"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_1","name":"weather","input":{}}}),
            // An empty partial-JSON delta, as Claude sends first.
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Oslo\"}"}}),
            json!({"type":"content_block_stop","index":1}),
            json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"call_2","name":"weather","input":{}}}),
            json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":\"Rome\"}"}}),
            json!({"type":"content_block_stop","index":2}),
            json!({"type":"message_delta","delta":{"stop_reason":"tool_calls"},"usage":{"output_tokens":9}}),
            json!({"type":"message_stop"}),
        ])
    }
    fn reasoning_stream() -> String {
        events(&[
            json!({"type":"message_start","message":{"usage":{"input_tokens":3}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Think"}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"ing."}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"42"}}),
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}),
            json!({"type":"message_stop"}),
        ])
    }
    fn cut_stream() -> String {
        events(&[
            json!({"type":"message_start","message":{"usage":{"input_tokens":3}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}),
        ])
    }
    fn error_body(message: &str, code: &str) -> Value {
        json!({"type": "error", "error": {"type": code, "message": message}})
    }
}

async fn mount(server: &MockServer, p: &str, status: u16, body: ResponseTemplate) {
    let _ = status;
    Mock::given(method("POST"))
        .and(path(p))
        .respond_with(body)
        .mount(server)
        .await;
}

fn user() -> Vec<Message> {
    vec![
        Message::system("Be brief."),
        Message::user("Capital of France?"),
    ]
}

async fn plain_answer<F: Family>() {
    let server = MockServer::start().await;
    mount(
        &server,
        F::path(),
        200,
        ResponseTemplate::new(200).set_body_json(F::plain()),
    )
    .await;
    let m = F::model(&server);
    let out = m.generate(&user(), &ChatOptions::default()).await.unwrap();
    assert_eq!(out.role, Role::Assistant);
    assert_eq!(out.content, "Paris.");
    let meta = out.meta.unwrap();
    assert_eq!(meta.finish_reason.as_deref(), Some("stop"));
    let usage = meta.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (12, 2, 14)
    );
}

async fn streamed_answer_with_usage_last<F: Family>() {
    let server = MockServer::start().await;
    mount(
        &server,
        F::path(),
        200,
        ResponseTemplate::new(200).set_body_raw(F::stream_text(), "text/event-stream"),
    )
    .await;
    let m = F::model(&server);
    let chunks = m
        .stream(&user(), &ChatOptions::default())
        .await
        .unwrap()
        .collect_vec()
        .await
        .unwrap();
    assert!(chunks.len() >= 3, "streamed in pieces");
    let out = Message::concat(chunks).unwrap();
    assert_eq!(out.content, "Paris.");
    let meta = out.meta.unwrap();
    assert_eq!(meta.finish_reason.as_deref(), Some("stop"));
    assert_eq!(meta.usage.unwrap().total_tokens, 14);
}

async fn parallel_tool_calls_streamed_equal_unstreamed<F: Family>() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(F::path()))
        .and(wiremock::matchers::body_partial_json(
            json!({"stream": true}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(F::stream_tool_calls(), "text/event-stream"),
        )
        .mount(&server)
        .await;
    mount(
        &server,
        F::path(),
        200,
        ResponseTemplate::new(200).set_body_json(F::tool_calls()),
    )
    .await;
    let tool = ToolInfo::new(
        "weather",
        "Weather in a city",
        json!({"type":"object","properties":{"city":{"type":"string"}}}),
    );
    let m = F::model(&server).with_tools(vec![tool]).unwrap();
    let whole = m.generate(&user(), &ChatOptions::default()).await.unwrap();
    let streamed = Message::concat(
        m.stream(&user(), &ChatOptions::default())
            .await
            .unwrap()
            .collect_vec()
            .await
            .unwrap(),
    )
    .unwrap();
    for msg in [&whole, &streamed] {
        assert_eq!(msg.tool_calls.len(), 2);
        assert_eq!(msg.tool_calls[0].id, "call_1");
        assert_eq!(msg.tool_calls[0].function.name, "weather");
        assert_eq!(msg.tool_calls[0].function.arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(msg.tool_calls[1].id, "call_2");
        assert_eq!(msg.tool_calls[1].function.arguments, r#"{"city":"Rome"}"#);
        assert_eq!(
            msg.meta.as_ref().unwrap().finish_reason.as_deref(),
            Some("tool_calls")
        );
    }
    assert_eq!(
        streamed.content, "Checking.",
        "text before the tool calls is kept"
    );
    // The request carried the tool definitions.
    let reqs = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert!(
        body["tools"].to_string().contains(r#""name":"weather""#),
        "{body}"
    );
}

async fn reasoning_content<F: Family>() {
    let server = MockServer::start().await;
    mount(
        &server,
        F::path(),
        200,
        ResponseTemplate::new(200).set_body_raw(F::reasoning_stream(), "text/event-stream"),
    )
    .await;
    let m = F::model(&server);
    let out = Message::concat(
        m.stream(&user(), &ChatOptions::default())
            .await
            .unwrap()
            .collect_vec()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(out.reasoning.as_deref(), Some("Thinking."));
    assert_eq!(out.content, "42");
}

async fn cut_stream_is_a_transient_error<F: Family>() {
    let server = MockServer::start().await;
    mount(
        &server,
        F::path(),
        200,
        ResponseTemplate::new(200).set_body_raw(F::cut_stream(), "text/event-stream"),
    )
    .await;
    let m = F::model(&server);
    let mut s = m.stream(&user(), &ChatOptions::default()).await.unwrap();
    let mut text = String::new();
    let err = loop {
        match s.recv().await {
            Some(Ok(c)) => text.push_str(&c.content),
            Some(Err(e)) => break e,
            None => panic!("a cut stream must not end cleanly"),
        }
    };
    assert_eq!(text, "Hello", "chunks before the cut are delivered");
    assert_eq!(err.kind(), ErrorKind::Transient);
}

async fn error_statuses_are_classified<F: Family>() {
    let cases: [(u16, &str, &str, ErrorKind); 5] = [
        (
            400,
            "Unsupported value: 'temperature'",
            "unsupported_value",
            ErrorKind::InvalidInput,
        ),
        (
            400,
            "This model's maximum context length is 8192 tokens",
            "context_length_exceeded",
            ErrorKind::ContextLength,
        ),
        (
            401,
            "Incorrect API key provided",
            "invalid_api_key",
            ErrorKind::Auth,
        ),
        (
            429,
            "Rate limit reached",
            "rate_limit_exceeded",
            ErrorKind::RateLimited,
        ),
        (
            500,
            "The server had an error",
            "server_error",
            ErrorKind::Transient,
        ),
    ];
    for (status, message, code, kind) in cases {
        let server = MockServer::start().await;
        let mut resp = ResponseTemplate::new(status).set_body_json(F::error_body(message, code));
        if status == 429 {
            resp = resp.insert_header("retry-after", "0");
        }
        mount(&server, F::path(), status, resp).await;
        let m = F::model(&server);
        let e = m
            .generate(&user(), &ChatOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "status {status}: {e}");
        assert!(
            e.to_string().contains(message),
            "provider message kept: {e}"
        );
        let tries = server.received_requests().await.unwrap().len();
        let expect = if kind.is_retryable() { 3 } else { 1 };
        assert_eq!(tries, expect, "status {status}: retried only if retryable");
        if status == 429 {
            assert_eq!(e.retry_after(), Some(Duration::ZERO));
        }
    }
}

async fn retry_then_success<F: Family>() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(F::path()))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream overloaded"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount(
        &server,
        F::path(),
        200,
        ResponseTemplate::new(200).set_body_json(F::plain()),
    )
    .await;
    let out = F::model(&server)
        .generate(&user(), &ChatOptions::default())
        .await
        .unwrap();
    assert_eq!(out.content, "Paris.");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

async fn malformed_json_is_an_error<F: Family>() {
    let server = MockServer::start().await;
    mount(
        &server,
        F::path(),
        200,
        ResponseTemplate::new(200).set_body_raw("{\"choices\": [", "application/json"),
    )
    .await;
    let e = F::model(&server)
        .generate(&user(), &ChatOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("malformed JSON"), "{e}");
    let server = MockServer::start().await;
    mount(
        &server,
        F::path(),
        200,
        ResponseTemplate::new(200).set_body_raw("data: {oops\n\n", "text/event-stream"),
    )
    .await;
    let mut s = F::model(&server)
        .stream(&user(), &ChatOptions::default())
        .await
        .unwrap();
    let e = s.recv().await.unwrap().unwrap_err();
    assert!(e.to_string().contains("malformed stream event"), "{e}");
}

macro_rules! suite {
    ($fam:ty, $($name:ident),*) => {$(
        #[tokio::test]
        async fn $name() {
            super::$name::<$fam>().await
        }
    )*};
}

mod openai {
    use super::OpenAi;
    suite!(
        OpenAi,
        plain_answer,
        streamed_answer_with_usage_last,
        parallel_tool_calls_streamed_equal_unstreamed,
        reasoning_content,
        cut_stream_is_a_transient_error,
        error_statuses_are_classified,
        retry_then_success,
        malformed_json_is_an_error
    );
}

mod anthropic {
    use super::Anthropic;
    suite!(
        Anthropic,
        plain_answer,
        streamed_answer_with_usage_last,
        parallel_tool_calls_streamed_equal_unstreamed,
        reasoning_content,
        cut_stream_is_a_transient_error,
        error_statuses_are_classified,
        retry_then_success,
        malformed_json_is_an_error
    );
}

#[tokio::test]
async fn anthropic_request_shape() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-ant"))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(Anthropic::plain()))
        .mount(&server)
        .await;
    let history = vec![
        Message::system("Be brief."),
        Message::user("weather in Oslo and Rome?"),
        Message::assistant(
            "",
            vec![
                eino::schema::ToolCall::function("c1", "weather", r#"{"city":"Oslo"}"#),
                // Empty arguments (seen from Claude) must not break the next request.
                eino::schema::ToolCall::function("c2", "weather", ""),
            ],
        ),
        Message::tool("sunny", "c1"),
        Message::tool("rain", "c2"),
    ];
    let mut o = ChatOptions::default();
    o.extensions.insert(eino_openai::anthropic::Thinking {
        budget_tokens: 2048,
    });
    Anthropic::model(&server)
        .generate(&history, &o)
        .await
        .unwrap();
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "tool answers merge into one user turn");
    assert_eq!(
        msgs[1]["content"][1],
        json!({"type": "tool_use", "id": "c2", "name": "weather", "input": {}})
    );
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(
        msgs[2]["content"][1],
        json!({"type": "tool_result", "tool_use_id": "c2", "content": "rain"})
    );
}

// ----- OpenAI-specific wire details -----

#[tokio::test]
async fn request_body_carries_options_tools_and_format() {
    let server = MockServer::start().await;
    mount(
        &server,
        "/v1/chat/completions",
        200,
        ResponseTemplate::new(200).set_body_json(OpenAi::plain()),
    )
    .await;
    let m = OpenAi::model(&server);
    let mut o = ChatOptions::default()
        .with_model("gpt-other")
        .with_temperature(0.2)
        .with_max_tokens(64);
    o.tool_choice = Some(eino::schema::ToolChoice::Named("weather".into()));
    o.tools = Some(vec![ToolInfo::new(
        "weather",
        "w",
        json!({"type": "object"}),
    )]);
    o.extensions
        .insert(eino_openai::ResponseFormat::JsonSchema {
            name: "answer".into(),
            schema: json!({"type": "object"}),
            strict: true,
        });
    let history = vec![
        Message::user("hi"),
        Message::assistant(
            "",
            vec![eino::schema::ToolCall::function("c1", "weather", "")],
        ),
        Message::tool("sunny", "c1").with_name("weather"),
    ];
    m.generate(&history, &o).await.unwrap();
    let req: &Request = &server.received_requests().await.unwrap()[0];
    assert_eq!(req.headers["authorization"], "Bearer sk-test");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["model"], "gpt-other");
    assert!((body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "weather"}})
    );
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["messages"][1]["content"], Value::Null);
    assert_eq!(
        body["messages"][1]["tool_calls"][0]["function"]["arguments"],
        "{}"
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "tool", "content": "sunny", "tool_call_id": "c1"})
    );
    assert!(body.get("stream").is_none());
}

#[tokio::test]
async fn azure_uses_api_key_header_and_version() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt4/chat/completions"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", "az-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(OpenAi::plain()))
        .mount(&server)
        .await;
    let cfg = eino_openai::OpenAiConfig::azure(
        &server.uri(),
        "gpt4",
        "2024-10-21",
        Some("az-key".into()),
    );
    let m = eino_openai::OpenAiChatModel::new(cfg).unwrap();
    let out = m.generate(&user(), &ChatOptions::default()).await.unwrap();
    assert_eq!(out.content, "Paris.");
}

#[tokio::test]
async fn lenient_parsing_of_odd_servers() {
    // No role, empty finish reason, content as parts, unknown fields: still a message.
    let server = MockServer::start().await;
    let body = json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "x": 1}, "finish_reason": ""}], "whatever": true});
    mount(
        &server,
        "/v1/chat/completions",
        200,
        ResponseTemplate::new(200).set_body_json(body),
    )
    .await;
    let out = OpenAi::model(&server)
        .generate(&user(), &ChatOptions::default())
        .await
        .unwrap();
    assert_eq!(out.role, Role::Assistant);
    assert_eq!(out.content, "ab");
    assert!(out.meta.is_none());
    // A stream without [DONE] that did finish ends cleanly (some servers omit it).
    let server = MockServer::start().await;
    let body =
        "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n";
    mount(
        &server,
        "/v1/chat/completions",
        200,
        ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"),
    )
    .await;
    let chunks = OpenAi::model(&server)
        .stream(&user(), &ChatOptions::default())
        .await
        .unwrap()
        .collect_vec()
        .await
        .unwrap();
    assert_eq!(Message::concat(chunks).unwrap().content, "ok");
}

#[tokio::test]
async fn embeddings_in_order_and_batches() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let inputs = body["input"].as_array().unwrap().clone();
            // Answer in reverse order, with indexes: the client must reorder.
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .rev()
                .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": [t.as_str().unwrap().len() as f32, 0.5]}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": data, "model": "emb"}))
        })
        .mount(&server)
        .await;
    let mut cfg =
        eino_openai::OpenAiConfig::new("emb").with_base_url(format!("{}/v1", server.uri()));
    cfg.embed_batch_size = 2;
    let e = eino_openai::OpenAiEmbedder::new(cfg).unwrap();
    use eino::component::Embedder;
    let texts: Vec<String> = ["a", "bb", "ccc"].iter().map(|s| s.to_string()).collect();
    let out = e.embed(&texts, &Default::default()).await.unwrap();
    assert_eq!(out, vec![vec![1.0, 0.5], vec![2.0, 0.5], vec![3.0, 0.5]]);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "batches of 2"
    );
}

#[tokio::test]
async fn unreachable_server_is_transient_after_retries() {
    let cfg = eino_openai::OpenAiConfig::new("m")
        .with_base_url("http://127.0.0.1:9/v1")
        .with_retry_base_delay(Duration::from_millis(1));
    let e = eino_openai::OpenAiChatModel::new(cfg)
        .unwrap()
        .generate(&user(), &ChatOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
}

#[tokio::test]
async fn dropping_a_stream_closes_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let _ = sock.read(&mut buf).await.unwrap();
        let event = "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n";
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(chunk.as_bytes()).await.unwrap();
        // Never finish the body; wait until the client hangs up.
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf)).await;
        matches!(n, Ok(Ok(0)) | Ok(Err(_)))
    });
    let cfg = eino_openai::OpenAiConfig::new("m").with_base_url(format!("http://{addr}/v1"));
    let m = eino_openai::OpenAiChatModel::new(cfg).unwrap();
    let mut s = m.stream(&user(), &ChatOptions::default()).await.unwrap();
    assert_eq!(s.recv().await.unwrap().unwrap().content, "first");
    drop(s);
    assert!(server.await.unwrap(), "the server saw the connection close");
}
