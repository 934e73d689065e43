"""Checks Grafana dashboards offline: each parses as a dashboard (grafana-foundation-sdk),
every panel query is valid PromQL (promtool check rules, after Grafana's variables are
replaced), and every metric a query names is one eino exports or Prometheus adds.

    python scripts/deploy/check_dashboard.py deploy/grafana/eino.json ...
"""

import json
import pathlib
import re
import subprocess
import sys
import tempfile

from grafana_foundation_sdk.models.dashboard import Dashboard

# What eino's /metrics serves (docs/server.md, Observability) and what Prometheus adds.
KNOWN = re.compile(r"^(eino_[a-z_]+|http_requests_total|http_request_duration_seconds(_bucket|_sum|_count)?|up)$")
FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
             "by", "without", "le", "on", "ignoring", "and", "or", "unless", "changes", "label_values"}


def exprs(panels):
    for p in panels:
        yield from exprs(p.get("panels", []))
        for t in p.get("targets", []):
            if t.get("expr"):
                yield p.get("title", "?"), t["expr"]


def substitute(expr):
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?(\w+)\}?", "x", expr)


def metrics_of(expr):
    expr = re.sub(r'"[^"]*"', '""', expr)               # label values
    expr = re.sub(r"\{[^}]*\}", "{}", expr)              # matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)               # ranges
    expr = re.sub(r"\((?:le|\w+)(?:, *\w+)*\)", "()", expr)  # by (...) label lists
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)) - FUNCTIONS
    return {n for n in names if not re.fullmatch(r"\d+|e\d*", n)}


def check(path):
    text = pathlib.Path(path).read_text()
    board = json.loads(text)
    Dashboard.from_json(board)  # raises on a malformed dashboard
    rules, problems = [], []
    for i, (title, expr) in enumerate(exprs(board["panels"])):
        rules.append({"record": f"dashboard:check:{i}", "expr": substitute(expr)})
        for m in sorted(metrics_of(substitute(expr))):
            if not KNOWN.match(m):
                problems.append(f"{path}: panel {title!r} reads {m!r}, which eino does not export")
    if not rules:
        problems.append(f"{path}: no queries")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    out = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    pathlib.Path(f.name).unlink()
    if out.returncode != 0:
        problems.append(f"{path}: promtool rejects a query:\n{out.stdout}{out.stderr}")
    return len(rules), problems


if __name__ == "__main__":
    failed = False
    for p in sys.argv[1:]:
        n, problems = check(p)
        for line in problems:
            print(line, file=sys.stderr)
        failed |= bool(problems)
        print(f"{p}: {n} queries {'FAILED' if problems else 'ok'}")
    sys.exit(1 if failed else 0)
