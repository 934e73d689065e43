"""A deliberately broken MCP server over stdio, written by hand (no SDK), for the client's
bad-input tests. Usage: raw_server.py MODE, where MODE is what goes wrong:

  garbage      answers tools/call with a line that is not JSON-RPC
  bad_schema   lists a tool whose inputSchema is not an object schema
  hang         never answers tools/call
  exit         exits (status 3) when tools/call arrives, mid-call
  ok           behaves: tools `add` {a, b} and `weather` {city}

It answers initialize with the protocol version the client asks for."""

import json
import sys

mode = sys.argv[1]
TOOLS = [{
    "name": "add",
    "description": "Add two integers",
    "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"]},
}]
TOOLS.append({
    "name": "weather",
    "description": "Current weather for a city",
    "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
})
if mode == "bad_schema":
    TOOLS.append({"name": "weird", "description": "schema is a string", "inputSchema": {"type": "string"}})


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    method, ident = msg.get("method"), msg.get("id")
    if ident is None:
        continue  # notifications
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": ident, "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw-" + mode, "version": "0"},
        }})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": ident, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        if mode == "garbage":
            sys.stdout.write("this is not json-rpc {\n")
            sys.stdout.flush()
        elif mode == "hang":
            pass
        elif mode == "exit":
            sys.exit(3)
        else:
            name, a = msg["params"]["name"], msg["params"].get("arguments") or {}
            if name == "weather":
                text, error = "sunny in " + str(a.get("city")), False
            elif isinstance(a.get("a"), int) and isinstance(a.get("b"), int):
                text, error = str(a["a"] + a["b"]), False
            else:
                text, error = "add needs integers a and b", True
            send({"jsonrpc": "2.0", "id": ident,
                  "result": {"content": [{"type": "text", "text": text}], "isError": error}})
    else:
        send({"jsonrpc": "2.0", "id": ident, "error": {"code": -32601, "message": "no " + method}})
