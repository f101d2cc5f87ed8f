"""A real, independent MCP client for wikibot's tests: the official MCP Python SDK.

Usage:
    python mcp_client.py URL static TOKEN
    python mcp_client.py URL oauth
    python mcp_client.py URL tools TOKEN

It connects over Streamable HTTP, lists the tools, calls `echo`, writes a note and reads
it back, and prints one JSON line describing what happened. In `oauth` mode the SDK runs
the whole OAuth 2.1 flow itself: protected-resource metadata from the 401, authorization
server metadata, dynamic client registration, authorization code with PKCE S256 and the
`resource` parameter, token exchange. The authorization step is headless: the redirect
handler fetches the authorization URL and takes the code from the redirect it gets back.
In `tools` mode (static token) it drives the wiki tools instead: writes linked pages with
frontmatter, searches, follows links, edits a snippet and renames a page with its links
rewritten, and reports what it saw.
Any failed expectation exits with status 1 and a message on stderr.
"""

import asyncio
import json
import sys
import time
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

# Registered with the authorization server; never contacted (the flow is headless).
REDIRECT_URI = "http://127.0.0.1:1/callback"


class MemoryTokenStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def headless_oauth(server_url: str, storage: MemoryTokenStorage) -> OAuthClientProvider:
    redirect = {}

    async def redirect_handler(authorization_url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
            response = await http.get(authorization_url)
        if response.status_code not in (301, 302, 303, 307, 308):
            raise RuntimeError(f"authorization answered {response.status_code}: {response.text}")
        redirect["location"] = response.headers["location"]

    async def callback_handler() -> AuthorizationCodeResult:
        query = parse_qs(urlparse(redirect["location"]).query)
        return AuthorizationCodeResult(
            code=query["code"][0],
            state=query.get("state", [None])[0],
            iss=query.get("iss", [None])[0],
        )

    return OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name="wikibot test client (MCP Python SDK)",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )


def expect(condition: bool, message: str) -> None:
    if not condition:
        print(f"mcp_client.py: {message}", file=sys.stderr)
        sys.exit(1)


def text_of(result) -> str:
    return result.content[0].text if result.content else ""


async def wiki_tools(client: Client) -> dict:
    """Drives the wiki tools the way an assistant would; returns what it saw."""

    async def call(name: str, args: dict, ok: bool = True) -> str:
        result = await client.call_tool(name, args)
        expect(result.is_error != ok, f"{name} {args}: {text_of(result)}")
        return text_of(result)

    def revision(text: str) -> str:
        return text.split()[-1]

    await call("write_note", {"path": "SDK/Home", "content": "---\ncategory: Hub\ntags: [sdk]\n---\nStart at [[SDK/Guide]].\n"})
    await call("write_note", {"path": "SDK/Guide", "content": "The guide: cold starts matter.\nWarm ones less.\n"})
    search = await call("search_notes", {"query": '"cold starts"'})
    links = await call("get_links", {"path": "SDK/Guide"})
    listing = await call("list_notes", {"category": "hub"})
    read = await call("read_note", {"path": "SDK/Guide"})
    rev = next(line.split(": ", 1)[1] for line in read.splitlines() if line.startswith("Revision: "))
    twice = await call("edit_note", {"path": "SDK/Guide", "old_string": "ones", "new_string": "x"}, ok=True)
    duplicate = await call("edit_note", {"path": "SDK/Guide", "old_string": "s", "new_string": "x"}, ok=False)
    read = await call("read_note", {"path": "SDK/Guide"})
    rev = next(line.split(": ", 1)[1] for line in read.splitlines() if line.startswith("Revision: "))
    renamed = await call("rename_note", {"path": "SDK/Guide", "new_path": "SDK/Manual", "revision": rev})
    home = await call("read_note", {"path": "SDK/Home"})
    return {
        "search": search,
        "links": links,
        "listing": listing,
        "edit": twice,
        "duplicate": duplicate,
        "renamed": renamed,
        "home": home,
    }


async def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    if mode == "tools":
        headers = {"Authorization": f"Bearer {sys.argv[3]}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                tools = sorted(tool.name for tool in (await client.list_tools()).tools)
                report = await wiki_tools(client)
                report["tools"] = tools
                print(json.dumps(report))
        return
    timeout = httpx2.Timeout(30.0, read=60.0)
    storage = MemoryTokenStorage()
    if mode == "static":
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {sys.argv[3]}"}, timeout=timeout)
    elif mode == "oauth":
        http = httpx2.AsyncClient(auth=headless_oauth(url, storage), timeout=timeout)
    else:
        expect(False, f"unknown mode {mode!r}")

    note_path = f"Python/{mode} note"
    note = f"# Written by the MCP Python SDK\n\nmode {mode} at {time.time()}\n"
    async with http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            tools = sorted(tool.name for tool in (await client.list_tools()).tools)
            for name in ("echo", "read_note", "write_note", "list_notes", "get_history", "get_recent_changes"):
                expect(name in tools, f"tool {name} missing from {tools}")

            echoed = await client.call_tool("echo", {"text": f"hello over {mode}"})
            expect(not echoed.is_error, f"echo failed: {echoed}")
            echo_text = echoed.content[0].text

            written = await client.call_tool("write_note", {"path": note_path, "content": note})
            expect(not written.is_error, f"write_note failed: {written.content}")
            read = await client.call_tool("read_note", {"path": note_path})
            expect(not read.is_error, f"read_note failed: {read.content}")
            read_text = read.content[0].text
            expect(read_text.endswith(note), f"read back {read_text!r}, wrote {note!r}")

            print(json.dumps({
                "protocol_version": str(client.protocol_version),
                "tools": tools,
                "echo": echo_text,
                "write": written.content[0].text,
                "read_back_matches": True,
                "oauth_client_id": storage.client_info.client_id if storage.client_info else None,
                "got_token": storage.tokens is not None,
            }))


if __name__ == "__main__":
    asyncio.run(main())
