"""Drive an MCP endpoint with the official MCP Python SDK client and print what it saw.

Usage: sdk_client.py URL MODE SESSIONS

MODE selects how the SDK picks the protocol era, exactly as `mcp.Client(mode=...)` does:
`legacy` runs the initialize handshake (session era, `Mcp-Session-Id`); `auto` probes
`server/discover` first and adopts the stateless era (2026-07-28) when the server answers it,
falling back to initialize otherwise. Each session has its own HTTP connection pool, so the
kernel spreads the sessions' connections over the server's listeners.

Every session lists tools, calls `echo` and `add`, reads `demo://readme` and gets the `greet`
prompt. stdout is one JSON array with one object per session: the SDK's parsed results (dumped
with their wire field names) and the HTTP exchanges seen on the wire. Exit status 1 when any
session raised; its object then carries `error`.
"""

import json
import sys
import traceback

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ECHO_TEXT = "h\u00e9llo through the gateway"
ADD_ARGS = {"a": 2.5, "b": 4}
PROMPT_NAME = "Ada"
RESOURCE_URI = "demo://readme"


def wire(result):
    """A result model as it was on the wire: camelCase keys, no unset fields."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def rpc_method(request):
    """The JSON-RPC method of a POST body, or None for GET/DELETE and non-request bodies."""
    try:
        body = json.loads(request.content)
    except (ValueError, httpx2.RequestNotRead):
        return None
    return body.get("method") if isinstance(body, dict) else None


async def run_session(url, mode, index):
    exchanges = []

    async def record(response):
        exchanges.append(
            {
                "http_method": response.request.method,
                "rpc_method": rpc_method(response.request),
                "status": response.status_code,
                "request_protocol_version": response.request.headers.get("mcp-protocol-version"),
                "session_id": response.headers.get("mcp-session-id"),
            }
        )

    http = httpx2.AsyncClient(
        timeout=httpx2.Timeout(30.0, read=60.0), event_hooks={"response": [record]}
    )
    out = {"index": index, "mode": mode, "exchanges": exchanges}
    try:
        async with http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode=mode, cache=None) as client:
                session = client.session
                info = client.server_info
                out["protocol_version"] = client.protocol_version
                out["server_info"] = None if info is None else wire(info)
                out["tools"] = wire(await session.list_tools())
                out["echo"] = wire(await session.call_tool("demo__echo", {"text": ECHO_TEXT}))
                out["add"] = wire(await session.call_tool("demo__add", ADD_ARGS))
                out["resource"] = wire(await session.read_resource(RESOURCE_URI))
                out["prompt"] = wire(await session.get_prompt("demo__greet", {"name": PROMPT_NAME}))
    except Exception:  # noqa: BLE001 - reported to the caller, which fails the test
        out["error"] = traceback.format_exc()
    return out


async def main(url, mode, sessions):
    results = [None] * sessions

    async def one(index):
        results[index] = await run_session(url, mode, index)

    async with anyio.create_task_group() as tg:
        for index in range(sessions):
            tg.start_soon(one, index)
    json.dump(results, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in ("legacy", "auto"):
        sys.exit("usage: sdk_client.py URL legacy|auto SESSIONS")
    sys.exit(anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3])))
