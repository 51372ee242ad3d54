-- wrk script: one stateless-era (2026-07-28) MCP request per call on keep-alive connections.
-- LOAD_REQUEST selects the request: "echo" (default) is tools/call echo through the builtin
-- upstream; "discover" is server/discover, answered by the gateway itself with no upstream call;
-- "notify" is a notifications/cancelled for an unknown request id, answered 202 with no body:
-- the floor (HTTP framing, JSON-RPC envelope and header checks, nothing to build or forward).
-- Every request carries the _meta fields and the mirrored MCP-Protocol-Version, Mcp-Method and
-- Mcp-Name headers the stateless era requires, so no session is needed.

local version = "2026-07-28"
local meta = '"_meta":{"io.modelcontextprotocol/protocolVersion":"' .. version .. '",'
  .. '"io.modelcontextprotocol/clientCapabilities":{},'
  .. '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"4"}}'

local requests = {
  echo = {
    method = "tools/call",
    name = "echo",
    params = '{"name":"echo","arguments":{"text":"hello shardgate"},' .. meta .. '}',
  },
  discover = {
    method = "server/discover",
    params = '{' .. meta .. '}',
  },
  notify = {
    method = "notifications/cancelled",
    params = '{"requestId":"none",' .. meta .. '}',
    notification = true,
  },
}

local kind = os.getenv("LOAD_REQUEST") or "echo"
local request = requests[kind]
if request == nil then
  error("LOAD_REQUEST must be echo, discover or notify, got " .. kind)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = version
wrk.headers["Mcp-Method"] = request.method
if request.name ~= nil then
  wrk.headers["Mcp-Name"] = request.name
end
local id = request.notification and "" or '"id":1,'
wrk.body = '{"jsonrpc":"2.0",' .. id .. '"method":"' .. request.method .. '","params":'
  .. request.params .. '}'
