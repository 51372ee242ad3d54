"""Drive one MCP endpoint through a script of steps with the official MCP Python SDK client.

Usage: gateway_client.py URL MODE SCRIPT_JSON [CALLBACKS]

MODE is how the SDK picks the protocol era, as `mcp.Client(mode=...)` does: `legacy` runs the
initialize handshake (2025 session era); `auto` probes `server/discover` and adopts the
2026-07-28 era when the server answers it, falling back to initialize otherwise.

SCRIPT_JSON is a JSON list of steps, run in order on one connection:
  {"op": "list_tools"} | {"op": "list_prompts"} | {"op": "list_resources"}
  {"op": "list_resource_templates"} | {"op": "ping"}
  {"op": "call", "tool": T, "args": {...}, "timeout_s": 2}      timeout_s is optional
  {"op": "call_progress", "tool": T, "args": {...}}             records progress callbacks
  {"op": "cancel_after", "tool": T, "args": {...}, "after_s": 0.5}
      starts the call and cancels it after after_s: the SDK sends notifications/cancelled
      (handshake era) or closes the request's response stream (2026-07-28 era)
  {"op": "set_level", "level": "debug"}
      handshake era: logging/setLevel; 2026-07-28 era (no such method): every later step
      opts in to log messages at that level through `_meta` (io.modelcontextprotocol/logLevel)
  {"op": "get_prompt", "name": N, "args": {...}}
  {"op": "read_resource", "uri": U}
  {"op": "complete", "prompt": N | "uri_template": U, "argument": {"name": A, "value": V},
   "context": {...}}                                            context is optional
  {"op": "sleep", "s": 0.2}                                     lets notifications arrive
  {"op": "listen", "filter": {"tools": true, "prompts": false, "resources": false},
   "steps": [...], "events": N, "wait_s": 10}
      2026-07-28 era: opens subscriptions/listen with the filter, runs the nested steps while
      it is open, and stops waiting for N change events wait_s after opening; the result is
      {"honored": the acknowledged filter, "events": [event type, ...], "steps": [...]}

The client answers the server's requests the same way every time: sampling with
"sampled-by-client: <last user text>", roots/list with file:///tmp/shardgate-root, and
elicitation by accepting with "yes" for each string property of the requested schema (true
for a boolean, 1 for a number; {"answer": "yes"} when it names none). Log messages and other notifications are recorded. CALLBACKS, a comma
list of `sampling`, `roots` and `elicitation` (default: all three; "" for none), names the
server requests the client answers; the SDK declares exactly those capabilities.

stdout: one JSON object
  {"mode", "protocol_version", "server_info", "server_capabilities",
   "steps": [{"op", "ok", "result" | "error", "progress": [...]}, ...],
   "logs": [{"level", "logger", "data"}, ...],
   "notifications": [method, ...], "server_requests": [method, ...]}
Results are the SDK's parsed results dumped with their wire field names. A step that fails is
data (`ok: false`, `error: {type, message, code?}`) and the script goes on; the exit status is
0. It is 1 only when the script cannot run: bad arguments, or no connection to the endpoint
(then the object carries `error` and no steps).
"""

import json
import sys
import traceback
import warnings

import anyio
import httpx2
import mcp.types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import LOG_LEVEL_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

ROOT_URI = "file:///tmp/shardgate-root"
CALLBACKS = ("sampling", "roots", "elicitation")
ELICIT_ANSWER = {"answer": "yes"}


def wire(result):
    """A result model as it was on the wire: camelCase keys, no unset fields."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def error_data(exc):
    """A step's error as data: the exception type, its message, and the MCP error code."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return error_data(exc.exceptions[0])
    out = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, MCPError):
        out["code"] = exc.code
    return out


def last_user_text(params):
    """The text of the last user message of a sampling request ("" when there is none)."""
    for message in reversed(params.messages):
        if message.role != "user":
            continue
        blocks = message.content if isinstance(message.content, list) else [message.content]
        texts = [block.text for block in blocks if isinstance(block, types.TextContent)]
        if texts:
            return " ".join(texts)
    return ""


class Recorder:
    """The client's callbacks; records what the server sent outside of results."""

    def __init__(self):
        self.logs = []
        self.notifications = []
        self.server_requests = []

    async def sampling(self, context, params):
        self.server_requests.append("sampling/createMessage")
        text = f"sampled-by-client: {last_user_text(params)}"
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=text),
            model="shardgate-test-client",
            stop_reason="endTurn",
        )

    async def roots(self, context):
        self.server_requests.append("roots/list")
        return types.ListRootsResult(roots=[types.Root(uri=ROOT_URI, name="shardgate-root")])

    async def elicitation(self, context, params):
        self.server_requests.append("elicitation/create")
        schema = getattr(params, "requested_schema", None) or {}
        filled = {"boolean": True, "number": 1, "integer": 1}
        content = {
            name: filled.get(spec.get("type"), ELICIT_ANSWER["answer"])
            for name, spec in schema.get("properties", {}).items()
        }
        return types.ElicitResult(action="accept", content=content or dict(ELICIT_ANSWER))

    async def logging(self, params):
        self.logs.append({"level": params.level, "logger": params.logger, "data": params.data})

    async def message(self, message):
        if isinstance(message, Exception):
            self.notifications.append(f"exception: {type(message).__name__}: {message}")
            return
        method = getattr(message, "method", None)
        # Log messages and progress are recorded by their own callbacks.
        if method not in ("notifications/message", "notifications/progress"):
            self.notifications.append(method)


class Runner:
    """Runs the script's steps on one connected client."""

    def __init__(self, client):
        self.client = client
        self.modern = client.protocol_version in MODERN_PROTOCOL_VERSIONS
        # 2026-07-28 era: the log level each request opts in to (set by set_level).
        self.log_level = None

    def meta(self):
        if self.modern and self.log_level is not None:
            return {LOG_LEVEL_META_KEY: self.log_level}
        return None

    async def run(self, step):
        out = {"op": step.get("op"), "ok": False, "progress": []}
        try:
            out["result"] = await self.dispatch(step, out["progress"])
            out["ok"] = True
        except Exception as exc:  # noqa: BLE001 - a failed step is data
            out["error"] = error_data(exc)
        return out

    async def dispatch(self, step, progress):
        op = step.get("op")
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise ValueError(f"unknown op {op!r}")
        return await handler(step, progress)

    async def op_list_tools(self, step, progress):
        return wire(await self.client.list_tools(meta=self.meta()))

    async def op_list_prompts(self, step, progress):
        return wire(await self.client.list_prompts(meta=self.meta()))

    async def op_list_resources(self, step, progress):
        return wire(await self.client.list_resources(meta=self.meta()))

    async def op_list_resource_templates(self, step, progress):
        return wire(await self.client.list_resource_templates(meta=self.meta()))

    async def op_ping(self, step, progress):
        return wire(await self.client.send_ping(meta=self.meta()))

    async def op_call(self, step, progress):
        result = await self.client.call_tool(
            step["tool"],
            step.get("args", {}),
            read_timeout_seconds=step.get("timeout_s"),
            meta=self.meta(),
        )
        return wire(result)

    async def op_call_progress(self, step, progress):
        async def on_progress(value, total, message):
            progress.append({"progress": value, "total": total, "message": message})

        result = await self.client.call_tool(
            step["tool"],
            step.get("args", {}),
            read_timeout_seconds=step.get("timeout_s"),
            progress_callback=on_progress,
            meta=self.meta(),
        )
        return wire(result)

    async def op_cancel_after(self, step, progress):
        finished = None
        with anyio.move_on_after(float(step["after_s"])) as scope:
            finished = wire(
                await self.client.call_tool(step["tool"], step.get("args", {}), meta=self.meta())
            )
        return {"cancelled": scope.cancelled_caught, "completed": finished}

    async def op_set_level(self, step, progress):
        level = step["level"]
        if self.modern:
            self.log_level = level
            return {"era": "2026-07-28", "opt_in_level": level}
        return wire(await self.client.set_logging_level(level))

    async def op_get_prompt(self, step, progress):
        result = await self.client.get_prompt(step["name"], step.get("args"), meta=self.meta())
        return wire(result)

    async def op_read_resource(self, step, progress):
        return wire(await self.client.read_resource(step["uri"], meta=self.meta()))

    async def op_complete(self, step, progress):
        if "prompt" in step:
            ref = types.PromptReference(type="ref/prompt", name=step["prompt"])
        else:
            ref = types.ResourceTemplateReference(type="ref/resource", uri=step["uri_template"])
        result = await self.client.complete(ref, step["argument"], step.get("context"))
        return wire(result)

    async def op_listen(self, step, progress):
        wanted = step.get("filter", {})
        listen = self.client.listen(
            tools_list_changed=wanted.get("tools", False),
            prompts_list_changed=wanted.get("prompts", False),
            resources_list_changed=wanted.get("resources", False),
        )
        events = []
        async with listen as subscription:
            async def collect():
                async for event in subscription:
                    events.append(type(event).__name__)
                    if len(events) >= int(step.get("events", 1)):
                        return

            steps = []
            async with anyio.create_task_group() as group:
                async def watch():
                    with anyio.move_on_after(float(step.get("wait_s", 10))):
                        await collect()

                group.start_soon(watch)
                for nested in step.get("steps", []):
                    steps.append(await self.run(nested))
            return {"honored": wire(subscription.honored), "events": events, "steps": steps}

    async def op_sleep(self, step, progress):
        await anyio.sleep(float(step["s"]))
        return {}


async def main(url, mode, script, callbacks=CALLBACKS):
    recorder = Recorder()
    out = {"mode": mode, "steps": [], "logs": recorder.logs}
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0))
    connected = False
    try:
        async with http:
            transport = streamable_http_client(url, http_client=http)
            client = Client(
                transport,
                mode=mode,
                cache=None,
                sampling_callback=recorder.sampling if "sampling" in callbacks else None,
                list_roots_callback=recorder.roots if "roots" in callbacks else None,
                elicitation_callback=(
                    recorder.elicitation if "elicitation" in callbacks else None
                ),
                logging_callback=recorder.logging,
                message_handler=recorder.message,
            )
            async with client:
                connected = True
                info = client.server_info
                out["protocol_version"] = client.protocol_version
                out["server_info"] = None if info is None else wire(info)
                out["server_capabilities"] = wire(client.server_capabilities)
                runner = Runner(client)
                for step in script:
                    out["steps"].append(await runner.run(step))
    except Exception:  # noqa: BLE001 - reported on stdout
        if not connected:
            out["error"] = traceback.format_exc()
        else:
            # Tearing the connection down failed after every step ran: still a result.
            out["teardown_error"] = traceback.format_exc()
    out["notifications"] = recorder.notifications
    out["server_requests"] = recorder.server_requests
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0 if connected else 1


def parse_args(argv):
    if len(argv) not in (4, 5) or argv[2] not in ("legacy", "auto"):
        sys.exit("usage: gateway_client.py URL legacy|auto SCRIPT_JSON [CALLBACKS]")
    try:
        script = json.loads(argv[3])
    except ValueError as exc:
        sys.exit(f"gateway_client.py: SCRIPT_JSON is not JSON: {exc}")
    if not isinstance(script, list) or not all(isinstance(s, dict) and "op" in s for s in script):
        sys.exit("gateway_client.py: SCRIPT_JSON must be a list of objects with an \"op\"")
    callbacks = CALLBACKS
    if len(argv) == 5:
        callbacks = tuple(name for name in argv[4].split(",") if name)
        unknown = [name for name in callbacks if name not in CALLBACKS]
        if unknown:
            sys.exit(f"gateway_client.py: unknown CALLBACKS {unknown}; known: {list(CALLBACKS)}")
    return argv[1], argv[2], script, callbacks


if __name__ == "__main__":
    # logging/setLevel is deprecated at 2026-07-28 (SEP-2577); the script drives both eras.
    warnings.simplefilter("ignore", MCPDeprecationWarning)
    sys.exit(anyio.run(main, *parse_args(sys.argv)))
