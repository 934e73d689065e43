//! The client commands: talk to a running server over its native API.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

fn client(api_key: &Option<String>) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(k) = api_key {
        let v =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {k}")).context("API key")?;
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let msg = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)");
    bail!("server answered {status}: {msg}")
}

/// One server-sent event: (event name, data).
fn parse_event(block: &str) -> (String, String) {
    let (mut name, mut data) = ("message".to_string(), String::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (name, data)
}

/// Print a native chat event stream; returns the session id from `done`, or the waiting
/// run from `interrupted`.
async fn relay(resp: reqwest::Response) -> Result<(Option<String>, Option<Value>)> {
    let mut bytes = resp.bytes_stream();
    let mut buf = String::new();
    let (mut session, mut waiting) = (None, None);
    while let Some(chunk) = bytes.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (name, data) = parse_event(&block);
            let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            match name.as_str() {
                "delta" => {
                    print!("{}", v["content"].as_str().unwrap_or(""));
                    std::io::stdout().flush()?;
                }
                "done" => {
                    println!();
                    session = v["session_id"].as_str().map(str::to_string);
                }
                "interrupted" => {
                    session = v["session_id"].as_str().map(str::to_string);
                    waiting = Some(v);
                }
                "error" => eprintln!("\nerror: {}", v.pointer("/error/message").unwrap_or(&v)),
                _ => {}
            }
        }
    }
    Ok((session, waiting))
}

/// Ask about each waiting tool call on the terminal; the `decisions` of a resume.
fn ask(waiting: &Value) -> Result<Value> {
    let mut decisions = serde_json::Map::new();
    for p in waiting["pending"].as_array().into_iter().flatten() {
        eprint!(
            "The assistant wants to call {} with {}. Allow it? [y/N] ",
            p["tool"].as_str().unwrap_or("?"),
            p["arguments"]
        );
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        let approved = matches!(answer.trim(), "y" | "Y" | "yes");
        let id = p["call_id"]
            .as_str()
            .context("a pending call without an id")?;
        decisions.insert(id.to_string(), json!({ "approved": approved }));
    }
    Ok(Value::Object(decisions))
}

/// `eino chat`.
pub async fn chat(
    url: &str,
    api_key: Option<String>,
    app: Option<String>,
    mut session: Option<String>,
) -> Result<()> {
    let http = client(&api_key)?;
    let stdin = std::io::stdin();
    eprintln!("Type a message (Ctrl-D to quit).");
    loop {
        eprint!("> ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let body = json!({ "app": app, "session_id": session, "message": line, "stream": true });
        let resp = check(
            http.post(format!("{url}/api/v1/chat"))
                .json(&body)
                .send()
                .await?,
        )
        .await?;
        let (mut sid, mut waiting) = relay(resp).await?;
        // Tools that need approval stop the run until the user decides.
        while let Some(w) = waiting.take() {
            let run = w["run_id"]
                .as_str()
                .context("an interrupt without a run id")?;
            let body = json!({ "decisions": ask(&w)?, "stream": true });
            let resp = check(
                http.post(format!("{url}/api/v1/runs/{run}/resume"))
                    .json(&body)
                    .send()
                    .await?,
            )
            .await?;
            (sid, waiting) = relay(resp).await?;
        }
        if sid.is_some() {
            session = sid;
        }
    }
}

fn files_under(path: &Path) -> Result<Vec<std::path::PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        bail!("{} is neither a file nor a directory", path.display());
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let p = entry?.path();
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `eino ingest PATH --kb NAME`.
pub async fn ingest(url: &str, api_key: Option<String>, path: &Path, kb: &str) -> Result<()> {
    let http = client(&api_key)?;
    let created = http
        .post(format!("{url}/api/v1/knowledge-bases"))
        .json(&json!({ "name": kb }))
        .send()
        .await?;
    if created.status() != reqwest::StatusCode::CONFLICT {
        check(created).await?;
    }
    let files = files_under(path)?;
    if files.is_empty() {
        bail!("no files under {}", path.display());
    }
    let mut form = reqwest::multipart::Form::new();
    for f in &files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file")
            .to_string();
        let bytes = tokio::fs::read(f)
            .await
            .with_context(|| format!("cannot read {}", f.display()))?;
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
    }
    let resp = check(
        http.post(format!("{url}/api/v1/knowledge-bases/{kb}/documents"))
            .multipart(form)
            .send()
            .await?,
    )
    .await?;
    let job: Value = resp.json().await?;
    let id = job["job_id"]
        .as_str()
        .context("no job id in the answer")?
        .to_string();
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} files · {msg}",
    )?);
    loop {
        let s: Value = check(http.get(format!("{url}/api/v1/jobs/{id}")).send().await?)
            .await?
            .json()
            .await?;
        let p = &s["progress"];
        bar.set_length(
            p["documents_total"]
                .as_u64()
                .unwrap_or(files.len() as u64)
                .max(1),
        );
        bar.set_position(p["documents_done"].as_u64().unwrap_or(0));
        bar.set_message(format!("{}/{} chunks", p["chunks_done"], p["chunks_total"]));
        if s["state"] != "running" {
            bar.finish();
            for o in s["outcomes"].as_array().into_iter().flatten() {
                println!("{}\t{}", o[0].as_str().unwrap_or("?"), o[1]);
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `eino graph APP`.
pub async fn graph(url: &str, api_key: Option<String>, app: &str) -> Result<()> {
    let http = client(&api_key)?;
    let v: Value = check(
        http.get(format!("{url}/api/v1/applications/{app}/graph"))
            .send()
            .await?,
    )
    .await?
    .json()
    .await?;
    print!("{}", v["mermaid"].as_str().unwrap_or(""));
    Ok(())
}

/// `eino health`: GET `url` + `path` and fail unless it answers 2xx within `timeout`. A
/// container's HEALTHCHECK runs this, since the runtime image has no curl.
pub async fn health(url: &str, path: &str, timeout: Duration) -> Result<()> {
    let target = format!("{}{path}", url.trim_end_matches('/'));
    let resp = reqwest::Client::builder()
        .timeout(timeout)
        .build()?
        .get(&target)
        .send()
        .await
        .with_context(|| format!("GET {target}"))?;
    check(resp).await?;
    Ok(())
}
