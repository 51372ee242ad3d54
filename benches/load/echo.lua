-- wrk script: one MCP request per call on keep-alive connections.
--
-- LOAD_REQUEST selects the request: "echo" (default) is tools/call of the demo's echo tool,
-- named LOAD_TOOL (default "demo__echo", the builtin demo under its default prefix);
-- "discover" is server/discover, answered by the gateway itself with no upstream call;
-- "notify" is a notifications/cancelled for an unknown request id, answered 202 with no body:
-- the floor (HTTP framing, JSON-RPC envelope and header checks, nothing to build or forward).
--
-- Era: stateless (2026-07-28) unless LOAD_SESSION is set. Stateless requests carry the _meta
-- fields and the mirrored MCP-Protocol-Version, Mcp-Method and Mcp-Name headers, so no session
-- is needed. With LOAD_SESSION (an Mcp-Session-Id from an initialize the caller made, see
-- lib.sh) the requests are session era (2025-11-25): the session header, no _meta, and a
-- fresh id per request (ids count up per wrk thread; the harness runs one thread).
--
-- LOAD_CHECK=1 reads every answer and counts the wrong ones (not 200/202, a JSON-RPC error,
-- a tool result with isError true); done() prints "bad answers: N" and the first one. Reading
-- answers costs the load generator CPU, so the harness checks in a short run of its own.

local stateless_version = "2026-07-28"
local session_version = "2025-11-25"
local session = os.getenv("LOAD_SESSION")
if session == "" then
  session = nil
end
local version = session and session_version or stateless_version

local function params(fields)
  if session then
    return "{" .. fields .. "}"
  end
  local meta = '"_meta":{"io.modelcontextprotocol/protocolVersion":"' .. version .. '",'
    .. '"io.modelcontextprotocol/clientCapabilities":{},'
    .. '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"4"}}'
  if fields == "" then
    return "{" .. meta .. "}"
  end
  return "{" .. fields .. "," .. meta .. "}"
end

local tool = os.getenv("LOAD_TOOL") or "demo__echo"
local requests = {
  echo = {
    method = "tools/call",
    name = tool,
    params = params('"name":"' .. tool .. '","arguments":{"text":"hello shardgate"}'),
  },
  discover = {
    method = "server/discover",
    params = params(""),
  },
  notify = {
    method = "notifications/cancelled",
    params = params('"requestId":"none"'),
    notification = true,
  },
}

local kind = os.getenv("LOAD_REQUEST") or "echo"
local call = requests[kind]
if call == nil then
  error("LOAD_REQUEST must be echo, discover or notify, got " .. kind)
end
if session and kind == "discover" then
  error("server/discover is a stateless-era request; unset LOAD_SESSION for it")
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = version
if session then
  wrk.headers["Mcp-Session-Id"] = session
else
  wrk.headers["Mcp-Method"] = call.method
  if call.name ~= nil then
    wrk.headers["Mcp-Name"] = call.name
  end
end
local tail = '"method":"' .. call.method .. '","params":' .. call.params .. '}'
if call.notification then
  wrk.body = '{"jsonrpc":"2.0",' .. tail
elseif not session then
  wrk.body = '{"jsonrpc":"2.0","id":1,' .. tail
else
  -- A session refuses a request whose id is still in flight in it, so each request gets its
  -- own id: built per request, which costs the load generator a little CPU.
  local sent = 0
  function request()
    sent = sent + 1
    return wrk.format(nil, nil, nil, '{"jsonrpc":"2.0","id":' .. sent .. ',' .. tail)
  end
end

if os.getenv("LOAD_CHECK") == "1" then
  local threads = {}

  function setup(thread)
    table.insert(threads, thread)
  end

  function init(args)
    bad = 0
    first_bad = nil
  end

  local function wrong(status, body)
    if call.notification then
      return status ~= 202
    end
    return status ~= 200
      or not body:find('"result":', 1, true)
      or body:find('"isError":true', 1, true) ~= nil
  end

  function response(status, headers, body)
    if wrong(status, body) then
      bad = bad + 1
      if first_bad == nil then
        first_bad = status .. " " .. body
      end
    end
  end

  function done(summary, latency, requests)
    local total = 0
    local first = nil
    for _, thread in ipairs(threads) do
      total = total + thread:get("bad")
      first = first or thread:get("first_bad")
    end
    io.write("bad answers: " .. total .. "\n")
    if first ~= nil then
      io.write("first bad answer: " .. first .. "\n")
    end
  end
end
