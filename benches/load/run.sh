#!/usr/bin/env bash
# Load harness: whole-request cost of the gateway on one shard.
#
# Builds the release binary, starts `shardgate serve --cores 1` on an ephemeral port, warms up,
# then for each request kind (`notify`, the floor: a stateless notification answered 202;
# `discover`, answered by the gateway; `echo`, a tools/call through the builtin upstream):
#   - runs `wrk --latency -t1 -c$CONNECTIONS -d$DURATION` with benches/load/echo.lua,
#   - reads the gateway's utime+stime from /proc/PID/stat before and after (server CPU-us/request,
#     the figure that travels: on 2 cores wrk competes with the server for CPU),
#   - counts syscalls per request with `strace -c -f -p PID` over a separate short run.
# Prints req/s, p50/p99 latency, CPU-us/req and syscalls/req per kind.
#
# Usage: benches/load/run.sh            (env: DURATION=10s CONNECTIONS=32 STRACE_DURATION=3s)
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
STRACE_DURATION=${STRACE_DURATION:-3s}
WARMUP_DURATION=${WARMUP_DURATION:-2s}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
script="$here/echo.lua"

need() { # need COMMAND DEBIAN-PACKAGE
  command -v "$1" >/dev/null && return
  echo "installing $2" >&2
  apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; }
}
need wrk wrk
need strace strace

(cd "$root" && cargo build --release --quiet)
binary="$root/target/release/shardgate"

work=$(mktemp -d)
gateway_pid=""
cleanup() {
  if [[ -n "$gateway_pid" ]] && kill -0 "$gateway_pid" 2>/dev/null; then
    kill -TERM "$gateway_pid"
    wait "$gateway_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

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

"$binary" serve --config "$work/shardgate.toml" --cores 1 >"$work/stdout" 2>"$work/stderr" &
gateway_pid=$!
for _ in $(seq 100); do
  grep -q '^shardgate ready:' "$work/stdout" && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$work/stderr" >&2; echo "gateway exited" >&2; exit 1; }
  sleep 0.1
done
ready=$(grep -m1 '^shardgate ready:' "$work/stdout") || { echo "no ready line within 10 s" >&2; exit 1; }
url=$(sed -E 's/.* mcp=([^ ]+).*/\1/' <<<"$ready")
echo "$ready" >&2

cpu_ticks() { # utime + stime of the whole process (fields 14 and 15, after the comm field)
  sed -E 's/^.*\) //' "/proc/$gateway_pid/stat" | awk '{ print $12 + $13 }'
}

run_wrk() { # run_wrk KIND DURATION OUTFILE
  LOAD_REQUEST="$1" wrk --latency -t1 -c"$CONNECTIONS" -d"$2" -s "$script" "$url" >"$3"
  if grep -qE 'Non-2xx|Socket errors' "$3"; then
    cat "$3" >&2
    echo "load run $1 had errors; figures would be meaningless" >&2
    exit 1
  fi
}

requests_in() { awk '/requests in/ { print $1 }' "$1"; }

clk_tck=$(getconf CLK_TCK)
run_wrk echo "$WARMUP_DURATION" "$work/warmup.txt"

printf '%-9s %10s %10s %10s %12s %13s\n' request req/s p50 p99 cpu-us/req syscalls/req
for kind in notify discover echo; do
  before=$(cpu_ticks)
  run_wrk "$kind" "$DURATION" "$work/$kind.txt"
  after=$(cpu_ticks)
  requests=$(requests_in "$work/$kind.txt")
  rps=$(awk '/Requests\/sec/ { print $2 }' "$work/$kind.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "$work/$kind.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$work/$kind.txt")
  cpu_us=$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" \
    'BEGIN { printf "%.1f", t * 1e6 / hz / n }')

  strace -c -f -p "$gateway_pid" -o "$work/$kind.strace" 2>/dev/null &
  strace_pid=$!
  sleep 0.5 # let strace attach to every thread before load starts
  run_wrk "$kind" "$STRACE_DURATION" "$work/$kind-strace.txt"
  kill -INT "$strace_pid"
  wait "$strace_pid" || true
  traced=$(requests_in "$work/$kind-strace.txt")
  calls=$(awk '$NF == "total" { print $4 }' "$work/$kind.strace")
  per_req=$(awk -v c="$calls" -v n="$traced" 'BEGIN { printf "%.2f", c / n }')

  printf '%-9s %10s %10s %10s %12s %13s\n' "$kind" "$rps" "$p50" "$p99" "$cpu_us" "$per_req"
done
echo "wrk -t1 -c$CONNECTIONS -d$DURATION per kind; strace over $STRACE_DURATION; $(nproc) cores;" \
  "$(uname -r)" >&2
