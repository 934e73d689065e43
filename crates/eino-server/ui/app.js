// The eino web UI: chat with sessions (streamed), tool approvals, knowledge bases (upload
// with progress, documents, search) and run traces, over the native API. Plain DOM, no
// build step; everything the server sends is put into the page as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { app: null, session: null, kb: null };

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function status(text) {
  $("status").textContent = text || "";
}

function headers(extra = {}) {
  const h = { ...extra };
  const key = $("key").value.trim();
  if (key) h.authorization = "Bearer " + key;
  return h;
}

async function failure(resp) {
  let msg = resp.status + " " + resp.statusText;
  try {
    const body = await resp.json();
    if (body && body.error && body.error.message) msg = body.error.message;
  } catch (_) { /* not JSON */ }
  return new Error(msg);
}

// A JSON call; throws with the server's error message.
async function api(path, { method = "GET", body } = {}) {
  const opts = { method, headers: headers() };
  if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

// POST `body` and read the answer: server-sent events go to `on[event](data)`; a JSON
// answer (an interrupted run, 202) goes to `on.interrupted`.
async function post_stream(path, body, on) {
  const resp = await fetch(path, {
    method: "POST",
    headers: headers({ "content-type": "application/json" }),
    body: JSON.stringify(body),
  });
  if (!resp.ok) throw await failure(resp);
  const type = resp.headers.get("content-type") || "";
  if (!type.startsWith("text/event-stream")) {
    const data = await resp.json();
    (data.status === "interrupted" ? on.interrupted : on.done)(data);
    return;
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length || !on[name]) continue;
      let parsed;
      try { parsed = JSON.parse(data.join("\n")); } catch (_) { continue; }
      on[name](parsed);
    }
  }
}

// ---- chat ----

function bubble(role, text = "") {
  const b = el("div", { class: "msg " + role }, text);
  $("messages").append(b);
  $("messages").scrollTop = $("messages").scrollHeight;
  return b;
}

function meta(b, data, sources) {
  const m = el("span", { class: "meta" });
  if (data.run_id) {
    m.append(el("a", { onclick: () => showRun(data.run_id) }, "trace"));
  }
  for (const s of sources || []) {
    m.append(" · [" + (s.source || "?") + "]");
  }
  b.append(m);
}

// Relay one answer (a chat or a resume) into a new assistant bubble.
async function answer(path, body) {
  const b = bubble("assistant");
  const text = document.createTextNode("");
  b.append(text);
  let sources = [];
  try {
    await post_stream(path, body, {
      sources: (s) => { sources = s; },
      delta: (d) => {
        text.data += d.content || "";
        $("messages").scrollTop = $("messages").scrollHeight;
      },
      done: (d) => {
        if (!text.data && d.message) text.data = d.message.content;
        if (d.session_id) state.session = d.session_id;
        meta(b, d, sources.length ? sources : d.sources);
      },
      interrupted: (w) => {
        b.remove();
        if (w.session_id) state.session = w.session_id;
        approvalCard(w);
        loadWaiting();
      },
      error: (e) => {
        b.classList.add("error");
        text.data += (text.data ? "\n" : "") + ((e.error && e.error.message) || "error");
      },
    });
  } catch (e) {
    b.classList.add("error");
    text.data = e.message;
  }
  loadSessions();
}

async function send(ev) {
  ev.preventDefault();
  const message = $("message").value.trim();
  if (!message) return;
  $("message").value = "";
  bubble("user", message);
  $("send").disabled = true;
  await answer("/api/v1/chat", {
    app: state.app, session_id: state.session, message, stream: true,
  });
  $("send").disabled = false;
  $("message").focus();
}

// A waiting run: one row per pending tool call with Allow / Deny; the run resumes when
// every call is decided.
function approvalCard(w) {
  const card = el("div", { class: "msg approval" },
    el("strong", {}, "The assistant wants to use a tool that needs your approval."));
  const decisions = {};
  const pending = w.pending || [];
  const decide = async (call, approved, row) => {
    decisions[call.call_id] = { approved };
    row.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    row.append(el("em", {}, approved ? " allowed" : " denied"));
    if (Object.keys(decisions).length === pending.length) {
      await answer(`/api/v1/runs/${encodeURIComponent(w.run_id)}/resume`, { decisions, stream: true });
      loadWaiting();
    }
  };
  for (const call of pending) {
    const row = el("div", {},
      el("span", {}, call.tool),
      el("code", {}, JSON.stringify(call.arguments, null, 2)));
    row.append(
      el("button", { type: "button", class: "allow", onclick: () => decide(call, true, row) }, "Allow"),
      " ",
      el("button", { type: "button", class: "deny", onclick: () => decide(call, false, row) }, "Deny"));
    card.append(row);
  }
  $("messages").append(card);
  $("messages").scrollTop = $("messages").scrollHeight;
}

async function loadWaiting() {
  try {
    const { data } = await api("/api/v1/runs/interrupted");
    $("waiting").replaceChildren(...data.map((w) => el("li", {
      onclick: () => approvalCard(w),
    }, el("span", { class: "title" }, (w.pending[0] || {}).tool || w.run_id), el("span", {}, w.app))));
  } catch (e) { status(e.message); }
}

// ---- sessions ----

async function loadSessions() {
  try {
    const { data } = await api("/api/v1/sessions");
    $("sessions").replaceChildren(...data.filter((s) => s.app === state.app).map((s) => {
      const del = el("button", {
        type: "button", title: "Delete session",
        onclick: async (ev) => {
          ev.stopPropagation();
          await api(`/api/v1/sessions/${encodeURIComponent(s.id)}`, { method: "DELETE" });
          if (state.session === s.id) newSession();
          loadSessions();
        },
      }, "×");
      const li = el("li", { onclick: () => openSession(s.id) },
        el("span", { class: "title" }, s.title || s.id), del);
      if (s.id === state.session) li.classList.add("active");
      return li;
    }));
    status("");
  } catch (e) { status(e.message); }
}

async function openSession(id) {
  try {
    const { messages } = await api(`/api/v1/sessions/${encodeURIComponent(id)}`);
    state.session = id;
    $("messages").replaceChildren();
    for (const m of messages) bubble(m.role === "user" ? "user" : "assistant", m.content);
    loadSessions();
  } catch (e) { status(e.message); }
}

function newSession() {
  state.session = null;
  $("messages").replaceChildren();
  loadSessions();
}

// ---- knowledge bases ----

async function loadKbs() {
  try {
    const { data } = await api("/api/v1/knowledge-bases");
    $("kbs").replaceChildren(...data.map((k) => {
      const li = el("li", { onclick: () => openKb(k.name) },
        el("span", { class: "title" }, k.name), el("span", {}, String(k.documents)));
      if (k.name === state.kb) li.classList.add("active");
      return li;
    }));
  } catch (e) { status(e.message); }
}

async function createKb(ev) {
  ev.preventDefault();
  try {
    await api("/api/v1/knowledge-bases", { method: "POST", body: { name: $("kb-name").value.trim() } });
    $("kb-name").value = "";
    loadKbs();
  } catch (e) { status(e.message); }
}

function side(which, title) {
  $("side-title").textContent = title;
  $("kb-panel").hidden = which !== "kb";
  $("run-panel").hidden = which !== "run";
}

async function openKb(name) {
  state.kb = name;
  side("kb", "Knowledge base " + name);
  $("hits").replaceChildren();
  $("upload-status").textContent = "";
  loadKbs();
  loadDocuments();
}

async function loadDocuments() {
  const kb = encodeURIComponent(state.kb);
  try {
    const { data } = await api(`/api/v1/knowledge-bases/${kb}/documents`);
    $("documents").replaceChildren(...data.map((d) => el("li", {},
      `${d.source} (${d.chunks} chunks) `,
      el("button", {
        type: "button", title: "Delete document",
        onclick: async () => {
          await api(`/api/v1/knowledge-bases/${kb}/documents/${encodeURIComponent(d.source)}`, { method: "DELETE" });
          loadDocuments();
          loadKbs();
        },
      }, "×"))));
  } catch (e) { status(e.message); }
}

async function upload(ev) {
  ev.preventDefault();
  const files = $("files").files;
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  const bar = $("upload-progress");
  bar.hidden = false;
  bar.value = 0;
  try {
    const resp = await fetch(`/api/v1/knowledge-bases/${encodeURIComponent(state.kb)}/documents`, {
      method: "POST", headers: headers(), body: form,
    });
    if (!resp.ok) throw await failure(resp);
    const { job_id } = await resp.json();
    for (;;) {
      const job = await api(`/api/v1/jobs/${encodeURIComponent(job_id)}`);
      const p = job.progress || {};
      bar.max = Math.max(p.chunks_total || 1, 1);
      bar.value = p.chunks_done || 0;
      $("upload-status").textContent =
        `${p.documents_done || 0}/${p.documents_total || files.length} files, ${p.chunks_done || 0}/${p.chunks_total || 0} chunks`;
      if (job.state !== "running") {
        const outcomes = (job.outcomes || []).map((o) => `${o[0]}: ${o[1].status}`).join(", ");
        $("upload-status").textContent = `${job.state}: ${outcomes}`;
        break;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  } catch (e) {
    $("upload-status").textContent = e.message;
  }
  bar.hidden = true;
  $("files").value = "";
  loadDocuments();
  loadKbs();
}

async function search(ev) {
  ev.preventDefault();
  try {
    const { data } = await api(`/api/v1/knowledge-bases/${encodeURIComponent(state.kb)}/search`, {
      method: "POST", body: { query: $("query").value.trim(), top_k: 5 },
    });
    $("hits").replaceChildren(...data.map((h) => el("li", {},
      el("strong", {}, `${h.source} (${Number(h.score).toFixed(3)})`), el("br"), h.content)));
  } catch (e) { status(e.message); }
}

// ---- runs ----

async function showRun(id) {
  side("run", "Run " + id.slice(0, 8));
  try {
    const run = await api(`/api/v1/runs/${encodeURIComponent(id)}`);
    const lines = [
      `${run.app} · ${run.status} · ${run.duration_ms} ms · tokens ${run.prompt_tokens}+${run.completion_tokens}`,
      "",
    ];
    for (const n of run.nodes || []) {
      const ms = (x) => (x == null ? "?" : Number(x).toFixed(1));
      lines.push(`${n.name} (${n.component}) +${ms(n.start_ms)} ms, ${ms(n.duration_ms)} ms${n.error ? " — " + n.error : ""}`);
    }
    $("run").textContent = lines.join("\n");
  } catch (e) {
    $("run").textContent = e.message;
  }
}

// ---- start ----

async function loadApps() {
  try {
    const { data } = await api("/api/v1/applications");
    $("app").replaceChildren(...data.map((a) => el("option", { value: a.id }, a.id)));
    const saved = localStorage.getItem("eino-app");
    state.app = data.some((a) => a.id === saved) ? saved : data.length ? data[0].id : null;
    if (state.app) $("app").value = state.app;
    status("");
  } catch (e) { status(e.message); }
}

async function reload() {
  await loadApps();
  newSession();
  loadKbs();
  loadWaiting();
}

function start() {
  $("key").value = localStorage.getItem("eino-key") || "";
  $("key").onchange = () => {
    localStorage.setItem("eino-key", $("key").value.trim());
    reload();
  };
  $("app").onchange = () => {
    state.app = $("app").value;
    localStorage.setItem("eino-app", state.app);
    newSession();
  };
  $("new-session").onclick = newSession;
  $("chat-form").onsubmit = send;
  $("message").onkeydown = (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) send(ev);
  };
  $("kb-form").onsubmit = createKb;
  $("upload-form").onsubmit = upload;
  $("search-form").onsubmit = search;
  reload();
}

document.addEventListener("DOMContentLoaded", start);
