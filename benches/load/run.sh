#!/usr/bin/env bash
# Load harness: whole-request cost of the gateway on one shard.
#
# Builds the release binary, starts `shardgate serve --cores 1` on an ephemeral port with the
# builtin demo upstream, warms up, then for each request kind (`notify`, the floor: a stateless
# notification answered 202; `discover`, answered by the gateway; `echo`, a tools/call of
# `demo__echo` through the builtin upstream):
#   - checks the answers in a short run (a JSON-RPC error would otherwise count as a request),
#   - runs `wrk --latency -t1 -c$CONNECTIONS -d$DURATION` with benches/load/echo.lua,
#   - reads the gateway's utime+stime from /proc/PID/stat before and after (server CPU-us/request,
#     the figure that travels: on 2 cores wrk competes with the server for CPU),
#   - counts syscalls per request with `strace -c -f -p PID` over a separate short run.
# Prints req/s, p50/p99 latency, CPU-us/req and syscalls/req per kind.
# benches/load/proxy.sh measures a tools/call proxied to an http upstream the same way.
#
# Usage: benches/load/run.sh            (env: DURATION=10s CONNECTIONS=32 STRACE_DURATION=3s)
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
STRACE_DURATION=${STRACE_DURATION:-3s}
WARMUP_DURATION=${WARMUP_DURATION:-2s}

source "$(dirname "$0")/lib.sh"

cat >"$work/shardgate.toml" <<TOML
[server]
listen = "127.0.0.1:0"
path = "/mcp"

[admin]
listen = "127.0.0.1:0"

[[upstreams]]
name = "demo"
kind = "builtin"
sleep_ms_max = 1000
TOML
start_shardgate gateway "$work/shardgate.toml"

export LOAD_TOOL=demo__echo
LOAD_REQUEST=echo run_wrk "$gateway_url" "$WARMUP_DURATION" "$work/warmup.txt"

printf '%-9s %10s %10s %10s %12s %13s\n' request req/s p50 p99 cpu-us/req syscalls/req
for kind in notify discover echo; do
  export LOAD_REQUEST=$kind
  check_answers "$gateway_url"
  measure "$gateway_url" "$gateway_pid"
  count_syscalls "$gateway_url" "$gateway_pid"
  printf '%-9s %10s %10s %10s %12s %13s\n' "$kind" "$m_rps" "$m_p50" "$m_p99" \
    "${m_cpu[$gateway_pid]}" "${m_sys[$gateway_pid]}"
done
echo "wrk -t1 -c$CONNECTIONS -d$DURATION per kind; strace over $STRACE_DURATION; $(nproc) cores;" \
  "$(uname -r)" >&2
