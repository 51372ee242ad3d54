-- wrk script: one stateless-era (2026-07-28) MCP request per call on keep-alive connections.
-- LOAD_REQUEST selects the request: "echo" (default) is tools/call echo through the builtin
-- upstream; "discover" is server/discover, answered by the gateway itself (the floor: HTTP
-- framing, JSON-RPC envelope and header checks with no upstream call).
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
}

local kind = os.getenv("LOAD_REQUEST") or "echo"
local request = requests[kind]
if request == nil then
  error("LOAD_REQUEST must be echo or discover, got " .. kind)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = version
wrk.headers["Mcp-Method"] = request.method
if request.name ~= nil then
  wrk.headers["Mcp-Name"] = request.name
end
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"' .. request.method .. '","params":'
  .. request.params .. '}'
