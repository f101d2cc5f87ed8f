"""The same echo tool on FastMCP, for `checks/bench`'s MCP comparison.

Streamable HTTP, stateless, JSON responses (no SSE), on 127.0.0.1:PORT/mcp, requiring the
static bearer TOKEN as wikibot does (FastMCP's StaticTokenVerifier), so both servers do the
same work per request.

Usage: python fastmcp_echo.py PORT TOKEN
"""

import sys

from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier

port, token = int(sys.argv[1]), sys.argv[2]
mcp = FastMCP(
    "fastmcp-echo",
    auth=StaticTokenVerifier(tokens={token: {"client_id": "bench", "scopes": []}}),
)


@mcp.tool
def echo(text: str) -> str:
    """Echo the given text back unchanged."""
    return text


mcp.run(
    transport="http",
    host="127.0.0.1",
    port=port,
    path="/mcp",
    stateless_http=True,
    json_response=True,
    log_level="WARNING",
    show_banner=False,
)
