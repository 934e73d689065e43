"""Drives eino over MCP with the official MCP Python SDK (`mcp` 2.x) and fails (exit 1) on
any mismatch. Usage:

    mcp_client.py BASE_URL              # `eino serve`'s /mcp (API key, if any, in EINO_API_KEY)
    mcp_client.py --stdio EINO ARGS...  # `eino mcp ARGS...` over stdio

Expects knowledge base `docs` holding rust.md and application `assistant`."""

import asyncio
import os
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


async def main():
    if sys.argv[1] == "--stdio":
        # The SDK gives the child a minimal environment: pass on where the models are.
        env = {k: v for k, v in os.environ.items() if k.startswith("EINO_")}
        server = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:], env=env)
        async with stdio_client(server) as streams:
            await exercise(streams)
    else:
        key = os.environ.get("EINO_API_KEY")
        headers = {"authorization": f"Bearer {key}"} if key else {}
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(sys.argv[1] + "/mcp", http_client=http) as streams:
                await exercise(streams)
    print("mcp ok")


async def exercise(streams):
    async with ClientSession(streams[0], streams[1]) as s:
        info = await s.initialize()
        assert info.server_info.name == "eino", info

        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert {"ask_assistant", "search_knowledge"} <= set(tools), tools
        assert tools["ask_assistant"].input_schema["required"] == ["message"]

        found = await s.call_tool("search_knowledge", {"query": "What is Cargo?", "top_k": 2})
        assert not found.is_error, found
        assert "rust.md" in found.content[0].text, found.content[0].text
        assert found.structured_content["passages"], found.structured_content

        answer = await s.call_tool("ask_assistant", {"message": "What is Cargo?"})
        assert not answer.is_error, answer
        text = answer.content[0].text
        assert "Sources:" in text and "rust.md" in text, text
        assert answer.structured_content["run_id"], answer.structured_content

        resources = (await s.list_resources()).resources
        uris = [str(r.uri) for r in resources]
        assert "eino://knowledge-bases/docs" in uris, uris
        docs = await s.read_resource("eino://knowledge-bases/docs")
        assert "rust.md" in docs.contents[0].text, docs

        try:
            await s.call_tool("ask_assistant", {})
            raise AssertionError("a call without its message was accepted")
        except MCPError as e:
            assert "message" in str(e), e
        try:
            await s.read_resource("eino://knowledge-bases/nope")
            raise AssertionError("an unknown resource was read")
        except MCPError:
            pass


asyncio.run(main())
