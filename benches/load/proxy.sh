#!/usr/bin/env bash
# Load harness: what the gateway adds to a tools/call proxied to a fast http upstream.
#
# Builds the release binary and starts two shardgate processes, each `serve --cores 1` on
# ephemeral loopback ports:
#   - A, the upstream: only the builtin demo, unprefixed (its tool is `echo`), pinned to
#     UPSTREAM_CORE;
#   - B, the gateway: one `kind = "http"` upstream named `upstream` pointing at A (so the tool is
#     `upstream__echo`), pool_connections_max = CONNECTIONS so no call waits for a connection,
#     pinned to GATEWAY_CORE. A answers server/discover, so B speaks the stateless era to it.
# For each client era in ERAS (stateless: _meta and mirrored headers; session: initialize once,
# then Mcp-Session-Id) and each of ROUNDS rounds, it measures the demo's echo tools/call
#   direct:  wrk at A,
#   gateway: wrk at B, which forwards each call to A over its pool,
# the same way as run.sh: answers checked first, then `wrk --latency -t1 -c$CONNECTIONS
# -d$DURATION` with benches/load/echo.lua, utime+stime of A and of B from /proc/PID/stat
# (CPU-us per request of each process), then syscalls per request of each from
# `strace -c -f` over a separate STRACE_DURATION run.
# Gateway overhead = B's CPU-us/req in the gateway row (B does all the proxying work);
# added latency = p50/p99(gateway) - p50/p99(direct) of the same round.
#
# Usage: benches/load/proxy.sh
#   env: DURATION=10s CONNECTIONS=16 STRACE_DURATION=3s ROUNDS=1 ERAS="stateless session"
#        UPSTREAM_CORE=1 GATEWAY_CORE=0 (both 0 on a one-core machine)
#        WRK_CORE= (unset: wrk is not pinned; set it, e.g. all three to 0, to measure the
#        gateway with every process on one core, where no wake-up crosses cores)
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
STRACE_DURATION=${STRACE_DURATION:-3s}
WARMUP_DURATION=${WARMUP_DURATION:-2s}
ROUNDS=${ROUNDS:-1}
ERAS=${ERAS:-stateless session}
if (($(nproc) >= 2)); then
  UPSTREAM_CORE=${UPSTREAM_CORE:-1}
  GATEWAY_CORE=${GATEWAY_CORE:-0}
else
  UPSTREAM_CORE=${UPSTREAM_CORE:-0}
  GATEWAY_CORE=${GATEWAY_CORE:-0}
fi

source "$(dirname "$0")/lib.sh"

for era in $ERAS; do
  [[ "$era" == stateless || "$era" == session ]] ||
    die "ERAS takes stateless and/or session, got $era"
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a count 1.., got $ROUNDS"

listeners='[server]
listen = "127.0.0.1:0"
path = "/mcp"

[admin]
listen = "127.0.0.1:0"'

cat >"$work/upstream.toml" <<TOML
$listeners

[[upstreams]]
name = "demo"
kind = "builtin"
prefix = ""
TOML
start_shardgate upstream "$work/upstream.toml" "$UPSTREAM_CORE"

cat >"$work/gateway.toml" <<TOML
$listeners

[[upstreams]]
name = "upstream"
kind = "http"
url = "$upstream_url"
required = true
pool_connections_max = $CONNECTIONS
TOML
start_shardgate gateway "$work/gateway.toml" "$GATEWAY_CORE"

export LOAD_REQUEST=echo
target_url() { # target_url direct|gateway
  if [[ "$1" == direct ]]; then echo "$upstream_url"; else echo "$gateway_url"; fi
}
target_tool() {
  if [[ "$1" == direct ]]; then echo echo; else echo upstream__echo; fi
}

row_format='%-9s %-8s %9s %9s %9s %8s %8s %8s %8s\n'
printf "$row_format" era path req/s p50 p99 A-cpu-us B-cpu-us A-sys B-sys
summary=()
for round in $(seq "$ROUNDS"); do
  for era in $ERAS; do
    declare -A p50_us p99_us
    for path in direct gateway; do
      url=$(target_url "$path")
      export LOAD_TOOL
      LOAD_TOOL=$(target_tool "$path")
      export LOAD_SESSION=""
      [[ "$era" == session ]] && LOAD_SESSION=$(open_session "$url")
      check_answers "$url"
      run_wrk "$url" "$WARMUP_DURATION" "$work/warmup.txt"
      measure "$url" "$upstream_pid" "$gateway_pid"
      if [[ "$path" == direct ]]; then
        count_syscalls "$url" "$upstream_pid"
        m_sys[$gateway_pid]="-"
      else
        count_syscalls "$url" "$upstream_pid" "$gateway_pid"
      fi
      printf "$row_format" "$era" "$path" "$m_rps" "$m_p50" "$m_p99" \
        "${m_cpu[$upstream_pid]}" "${m_cpu[$gateway_pid]}" \
        "${m_sys[$upstream_pid]}" "${m_sys[$gateway_pid]}"
      p50_us[$path]=$(to_us "$m_p50")
      p99_us[$path]=$(to_us "$m_p99")
      gateway_cpu=${m_cpu[$gateway_pid]}
    done
    summary+=("$(awk -v r="$round" -v e="$era" -v cpu="$gateway_cpu" \
      -v a50="${p50_us[direct]}" -v b50="${p50_us[gateway]}" \
      -v a99="${p99_us[direct]}" -v b99="${p99_us[gateway]}" \
      'BEGIN { printf "round %d %-9s gateway CPU %5.1f us/call, added p50 %+.0f us, p99 %+.0f us",
        r, e, cpu, b50 - a50, b99 - a99 }')")
  done
done
printf '%s\n' "${summary[@]}"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION per row; strace over $STRACE_DURATION;" \
  "A on core $UPSTREAM_CORE, B on core $GATEWAY_CORE; $(nproc) cores; $(uname -r)" >&2
