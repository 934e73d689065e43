//! Applications with tools (`agent: react`): webhook tools, approvals that interrupt a run,
//! listing, resuming (also streamed) and giving up interrupted runs, tenancy of waiting
//! runs, and the configuration's errors. The model is a scripted fake (see common/agent.rs);
//! the webhooks are a real HTTP server. The same flow runs on PostgreSQL in tests/store.rs.

mod common;

use common::agent::{approval_flow, server, ToolUser, Webhooks};
use eino_server::config::{AgentKind, Config};
use serde_json::json;

#[tokio::test]
async fn approvals_interrupt_and_resume_runs_in_sqlite() {
    let hooks = Webhooks::start().await;
    let model = ToolUser::default();
    let s = server(&hooks, &model, |_| {}).await;
    approval_flow(&s, &hooks, &model).await;
    // A graph shows the agent as a subgraph.
    let (_, g) = s.get("/api/v1/applications/agent/graph").await;
    let mermaid = g["mermaid"].as_str().unwrap();
    assert!(
        mermaid.contains("agent") && mermaid.contains("tools"),
        "{mermaid}"
    );
    // The listing says which applications are agents that may wait for a decision.
    let (_, apps) = s.get("/api/v1/applications").await;
    let agent = apps["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "agent")
        .unwrap();
    assert_eq!(agent["agent"], "react", "{agent}");
    assert_eq!(agent["interruptible"], true, "{agent}");
    assert!(!agent["tools"].as_array().unwrap().is_empty(), "{agent}");
}

#[tokio::test]
async fn waiting_runs_belong_to_their_tenant() {
    let hooks = Webhooks::start().await;
    let model = ToolUser::default();
    let s = server(&hooks, &model, common::with_keys).await;
    let as_ = |key: &'static str, req: reqwest::RequestBuilder| req.bearer_auth(key);
    let alice = "key-of-alice-0123456789";
    let bob = "key-of-bob-0123456789";
    let r = as_(alice, s.http.post(s.url("/api/v1/chat")))
        .json(&json!({"app": "agent", "message": "pay"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let out: serde_json::Value = r.json().await.unwrap();
    let id = out["run_id"].as_str().unwrap();
    let listed: serde_json::Value = as_(bob, s.http.get(s.url("/api/v1/runs/interrupted")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed["data"].as_array().unwrap().is_empty());
    for req in [
        s.http.get(s.url(&format!("/api/v1/runs/interrupted/{id}"))),
        s.http
            .delete(s.url(&format!("/api/v1/runs/interrupted/{id}"))),
        s.http
            .post(s.url(&format!("/api/v1/runs/{id}/resume")))
            .json(&json!({"decisions": {"call_0": {"approved": true}}})),
    ] {
        assert_eq!(as_(bob, req).send().await.unwrap().status(), 404);
    }
    let r = as_(
        alice,
        s.http.post(s.url(&format!("/api/v1/runs/{id}/resume"))),
    )
    .json(&json!({"decisions": {"call_0": {"approved": true}}}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hooks.pay_calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tool_configuration_errors_name_the_key() {
    let hooks = Webhooks::default();
    let check = |f: &dyn Fn(&mut Config)| {
        let mut c = Config::default();
        common::agent::configure(&mut c, &hooks);
        f(&mut c);
        c.validate().unwrap_err().to_string()
    };
    let e = check(&|c| {
        c.applications
            .get_mut("agent")
            .unwrap()
            .tools
            .push("nope".into())
    });
    assert!(
        e.contains("applications.agent.tools") && e.contains("nope"),
        "{e}"
    );
    let e = check(&|c| c.applications.get_mut("agent").unwrap().agent = AgentKind::Chat);
    assert!(e.contains("applications.agent.agent"), "{e}");
    let e = check(&|c| c.applications.get_mut("agent").unwrap().tools.clear());
    assert!(e.contains("applications.agent.tools"), "{e}");
    let e =
        check(&|c| c.tools.get_mut("pay").unwrap().http.as_mut().unwrap().url = "file:///x".into());
    assert!(e.contains("tools.pay.http.url"), "{e}");
    // From YAML: unknown keys are named too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "tools:\n  t:\n    description: x\n    http: {url: 'http://x', method: GET}\n",
    )
    .unwrap();
    let e = Config::load(Some(&path), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("method"), "{e}");
}

#[tokio::test]
async fn a_missing_secret_stops_the_start_naming_the_tool() {
    let hooks = Webhooks::default();
    let mut cfg = Config::default();
    common::agent::configure(&mut cfg, &hooks);
    cfg.tools
        .get_mut("weather")
        .unwrap()
        .http
        .as_mut()
        .unwrap()
        .secret_headers
        .insert("x-other".into(), "EINO_TEST_UNSET_VARIABLE".into());
    cfg.models.clear();
    cfg.applications.retain(|k, _| k == "agent");
    cfg.models.insert(
        "tooluser".into(),
        eino_server::config::ModelConfig::Openai(eino_openai::OpenAiSettings {
            base_url: Some("http://127.0.0.1:9".into()),
            ..eino_openai::OpenAiSettings::new("x")
        }),
    );
    cfg.embedders.clear();
    cfg.server.data_dir = tempfile::tempdir().unwrap().keep();
    let reg = eino_server::registry::Registry::load(&cfg).await.unwrap();
    let err = match eino_server::state::AppState::build(cfg, reg).await {
        Ok(_) => panic!("started without the secret"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("tools.weather.http") && err.contains("EINO_TEST_UNSET_VARIABLE"),
        "{err}"
    );
}

#[tokio::test]
async fn runs_nobody_decides_on_expire_with_their_checkpoints() {
    let hooks = Webhooks::start().await;
    let model = ToolUser::default();
    let s = server(&hooks, &model, |_| {}).await;
    let (status, out) = s
        .post("/api/v1/chat", json!({"app": "agent", "message": "pay"}))
        .await;
    assert_eq!(status, 202, "{out}");
    let id = out["run_id"].as_str().unwrap().to_string();
    let ttl = std::time::Duration::from_secs(3600);
    let now = eino_server::store::now_ms();
    // Not yet: it waited less than the TTL.
    assert_eq!(
        eino_server::interrupts::expire(
            s.state.store.as_ref(),
            s.state.checkpoints.as_ref(),
            now,
            ttl
        )
        .await
        .unwrap(),
        0
    );
    let (status, _) = s.get(&format!("/api/v1/runs/interrupted/{id}")).await;
    assert_eq!(status, 200);
    // Two hours later it is gone, checkpoint included.
    let later = now + 2 * 3600 * 1000;
    assert_eq!(
        eino_server::interrupts::expire(
            s.state.store.as_ref(),
            s.state.checkpoints.as_ref(),
            later,
            ttl
        )
        .await
        .unwrap(),
        1
    );
    let (status, _) = s.get(&format!("/api/v1/runs/interrupted/{id}")).await;
    assert_eq!(status, 404);
    assert!(!s.state.checkpoints.list().await.unwrap().contains(&id));
    let (status, _) = s
        .post(
            &format!("/api/v1/runs/{id}/resume"),
            json!({"decisions": {"call_0": {"approved": true}}}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(hooks.pay_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn webhook_redirects_are_not_followed_and_carry_no_secret() {
    use axum::http::{header, StatusCode};
    let hooks = Webhooks::start().await;
    // A webhook that sends every call on to the internal weather endpoint.
    let internal = format!("{}/weather", hooks.url);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirector = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let to = internal.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let model = ToolUser::default();
    let s = server(&hooks, &model, |c| {
        let weather = c.tools.get_mut("weather").unwrap();
        weather.http.as_mut().unwrap().url = redirector;
    })
    .await;
    let (status, out) = s
        .post(
            "/api/v1/chat",
            json!({"app": "agent", "message": "weather"}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let answer = out["message"]["content"].as_str().unwrap();
    assert!(answer.contains("redirects are not followed"), "{answer}");
    assert_eq!(
        hooks
            .weather_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    assert_eq!(
        *hooks.last_key.lock().unwrap(),
        None,
        "the secret travelled"
    );
}
