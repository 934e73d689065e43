"""Writes deploy/grafana/eino.json, eino's Grafana dashboard, from the panel list below.

    python3 scripts/deploy/dashboard.py          # rewrite the file
    python3 scripts/deploy/dashboard.py --check  # fail if the file differs (the deploy test)

Panels are data, not hand-edited JSON: each is a title, a unit and PromQL queries over
eino's metrics (docs/server.md, Observability). `$job` and `$instance` are the dashboard's
variables; `$__rate_interval` is Grafana's. scripts/deploy/check_dashboard.py checks every
query with promtool."""

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parents[2] / "deploy/grafana/eino.json"
SEL = 'job=~"$job", instance=~"$instance"'
RATE = "$__rate_interval"


def q(expr, legend):
    return {"expr": expr, "legendFormat": legend}


def quantiles(metric, by=""):
    group = f"le{', ' + by if by else ''}"
    return [
        q(f"histogram_quantile({p}, sum by ({group}) (rate({metric}_bucket{{{SEL}}}[{RATE}])))",
          f"p{int(p * 100)}{' {{' + by + '}}' if by else ''}")
        for p in (0.5, 0.9, 0.99)
    ]


# (row, [(title, unit, description, [queries])]); every row holds up to four panels.
ROWS = [
    ("Traffic", [
        ("Requests by route", "reqps", "HTTP requests per second, by route.",
         [q(f"sum by (route) (rate(http_requests_total{{{SEL}}}[{RATE}]))", "{{route}}")]),
        ("Error ratio (5xx)", "percentunit", "Share of requests answered 5xx (502/504: an upstream model failed).",
         [q(f'sum(rate(http_requests_total{{{SEL}, status=~"5.."}}[{RATE}])) / sum(rate(http_requests_total{{{SEL}}}[{RATE}]))', "5xx ratio")]),
        ("Answers by status", "reqps", "Requests per second by status: 401 (auth), 413 (too large), 429 (rate limited).",
         [q(f"sum by (status) (rate(http_requests_total{{{SEL}}}[{RATE}]))", "{{status}}")]),
        ("Replicas up and ready", "short", "Replicas scraped (up) and answering /ready.",
         [q(f"sum(up{{{SEL}}})", "up"), q(f"sum(eino_ready{{{SEL}}})", "ready")]),
    ]),
    ("Latency", [
        ("Request latency", "s", "To the first byte of the answer (a stream's headers).",
         quantiles("http_request_duration_seconds")),
        ("p99 latency by route", "s", "",
         [q(f"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{{{SEL}}}[{RATE}])))", "{{route}}")]),
        ("Component p99 latency", "s", "Models, retrievers, tools, graphs: p99 by component.",
         [q(f"histogram_quantile(0.99, sum by (le, component) (rate(eino_component_duration_seconds_bucket{{{SEL}}}[{RATE}])))", "{{component}}")]),
        ("Streams in flight", "short", "Open server-sent-event answers, by replica.",
         [q(f"sum by (instance) (eino_streams_in_flight{{{SEL}}})", "{{instance}}")]),
    ]),
    ("Models and runs", [
        ("Tokens per second", "short", "Prompt and completion tokens of every model call.",
         [q(f"sum by (kind) (rate(eino_tokens_total{{{SEL}}}[{RATE}]))", "{{kind}}")]),
        ("Runs by status", "ops", "Application and model runs: completed, failed, interrupted, cancelled.",
         [q(f"sum by (status) (rate(eino_runs_total{{{SEL}}}[{RATE}]))", "{{status}}")]),
        ("Component errors", "ops", "",
         [q(f"sum by (component, name) (rate(eino_component_errors_total{{{SEL}}}[{RATE}]))", "{{component}} {{name}}")]),
        ("Runs waiting for approval", "ops", "Runs interrupted by a tool that needs a person's approval, and expired ones.",
         [q(f"sum by (app) (rate(eino_runs_interrupted_total{{{SEL}}}[{RATE}]))", "{{app}}"),
          q(f"sum(rate(eino_runs_expired_total{{{SEL}}}[{RATE}]))", "expired")]),
    ]),
    ("Resilience", [
        ("Open circuit breakers", "short", "1 while a model's breaker refuses calls.",
         [q(f"max by (model) (eino_breaker_open{{{SEL}}})", "{{model}}")]),
        ("Breaker rejections", "ops", "Calls refused by an open breaker, by model.",
         [q(f"sum by (model) (rate(eino_breaker_rejections_total{{{SEL}}}[{RATE}]))", "{{model}}")]),
        ("Fallbacks", "ops", "Runs that moved on from a model to the next of the chain.",
         [q(f"sum by (model) (rate(eino_model_fallbacks_total{{{SEL}}}[{RATE}]))", "{{model}}")]),
        ("Rate limiting", "ops", "Requests refused by the per-key limit, and callers throttled after failed logins.",
         [q(f"sum(rate(eino_rate_limited_total{{{SEL}}}[{RATE}]))", "rate limited"),
          q(f"sum(rate(eino_auth_throttled_total{{{SEL}}}[{RATE}]))", "auth throttled"),
          q(f"sum(rate(eino_auth_failures_total{{{SEL}}}[{RATE}]))", "auth failures")]),
    ]),
    ("Cache, Redis, ingestion", [
        ("Cache hit ratio", "percentunit", "Identical raw-model and embedding requests answered from the cache.",
         [q(f'sum(rate(eino_cache_requests_total{{{SEL}, result="hit"}}[{RATE}])) / sum(rate(eino_cache_requests_total{{{SEL}}}[{RATE}]))', "hit ratio")]),
        ("Redis errors", "ops", "Failed Redis calls by operation (limits let requests through, the cache misses).",
         [q(f"sum by (op) (rate(eino_redis_errors_total{{{SEL}}}[{RATE}]))", "{{op}}")]),
        ("Ingestion jobs", "short", "Jobs running (or waiting for a slot), and jobs finished per minute by state.",
         [q(f"sum(eino_ingest_jobs_running{{{SEL}}})", "running"),
          q(f"sum by (state) (rate(eino_ingest_jobs_total{{{SEL}}}[{RATE}])) * 60", "{{state}} / min")]),
        ("Ingested documents and chunks", "ops", "Documents by outcome, and chunks indexed, per second.",
         [q(f"sum by (outcome) (rate(eino_ingest_documents_total{{{SEL}}}[{RATE}]))", "{{outcome}}"),
          q(f"sum(rate(eino_ingest_chunks_total{{{SEL}}}[{RATE}]))", "chunks")]),
    ]),
]

DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(pid, x, y, title, unit, description, queries):
    return {
        "id": pid, "type": "timeseries", "title": title, "description": description,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 6, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi"}},
        "targets": [dict(refId=chr(ord("A") + i), datasource=DS, **t) for i, t in enumerate(queries)],
    }


def variable(name, label, query):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": name}, "definition": query,
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard():
    panels, pid, y = [], 1, 0
    for row, items in ROWS:
        panels.append({"id": pid, "type": "row", "title": row, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, item in enumerate(items):
            panels.append(panel(pid, 6 * i, y, *item))
            pid += 1
        y += 8
    return {
        "uid": "eino-overview", "title": "eino", "tags": ["eino"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "editable": False, "graphTooltip": 1,
        "refresh": "30s", "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "prometheus", "current": {}},
            variable("job", "Job", "label_values(eino_build_info, job)"),
            variable("instance", "Replica", 'label_values(eino_build_info{job=~"$job"}, instance)'),
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render():
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        if OUT.read_text() != render():
            sys.exit(f"{OUT} is out of date: run python3 scripts/deploy/dashboard.py")
    else:
        OUT.write_text(render())
