"""An MCP server built with the official Python SDK (`mcp` 2.x, MCPServer), for the client's
tests. Usage: py_server.py [stdio | http PORT]."""

import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
mcp = MCPServer("eino-test-python")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def weather(city: str) -> dict:
    """Current weather for a city (structured)."""
    return {"city": city, "temperature": 21.5, "sky": "clear"}


@mcp.tool()
def fail(reason: str) -> str:
    """Always fails, saying why (ToolError: the SDK shows its message to the client)."""
    raise ToolError(f"refused: {reason}")


@mcp.tool()
def die() -> str:
    """Exits the server in the middle of the call."""
    os._exit(7)


@mcp.tool()
def pid() -> int:
    """The server's process id (a restarted server has another)."""
    return os.getpid()


@mcp.resource("notes://today")
def today() -> str:
    """Today's notes."""
    return "Buy milk."


if __name__ == "__main__":
    if sys.argv[1:2] in ([], ["stdio"]):
        mcp.run(transport="stdio")
    else:
        mcp.run(transport="streamable-http", host="127.0.0.1", port=port)
