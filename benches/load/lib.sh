# Shared code of the load harness (sourced by run.sh and proxy.sh; not run on its own).
#
# Provides: the release binary, a scratch directory, shardgate processes started on ephemeral
# loopback ports and stopped on exit, the wrk runs with benches/load/echo.lua (the request is
# chosen by the LOAD_* variables that script reads), per-process CPU from /proc/PID/stat and
# syscall counts from strace.
#
# Variables read: DURATION, CONNECTIONS, STRACE_DURATION, WARMUP_DURATION (each script sets its
# defaults before sourcing), and SHARDGATE_BIN: a shardgate binary to measure instead of this
# tree's release build (e.g. one built from an earlier commit, to compare before and after in
# one run).

load_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$load_dir/../.." && pwd)
script="$load_dir/echo.lua"
clk_tck=$(getconf CLK_TCK)

die() {
  echo "$*" >&2
  exit 1
}

need() { # need COMMAND DEBIAN-PACKAGE
  command -v "$1" >/dev/null && return
  echo "installing $2" >&2
  apt-get install -y "$2" >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; } ||
    die "$1 is missing and installing the Debian package $2 failed"
}
need wrk wrk
need strace strace
need curl curl

if [[ -n "${SHARDGATE_BIN:-}" ]]; then
  [[ -x "$SHARDGATE_BIN" ]] || die "SHARDGATE_BIN=$SHARDGATE_BIN is not an executable file"
  binary=$SHARDGATE_BIN
else
  (cd "$root" && cargo build --release --quiet) || die "cargo build --release failed"
  binary="$root/target/release/shardgate"
fi

work=$(mktemp -d)
started_pids=()
tracer_pids=()
cleanup() {
  local pid
  for pid in "${tracer_pids[@]}" "${started_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
  done
  for pid in "${tracer_pids[@]}" "${started_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_shardgate NAME CONFIG-FILE [CORE]: serves CONFIG-FILE on one shard (pinned to CORE
# when given, through the affinity mask --cores picks from) and sets ${NAME}_pid and
# ${NAME}_url. The config must listen on port 0 so every run gets free ports.
start_shardgate() {
  local name=$1 config=$2 core=${3:-}
  local out="$work/$name.stdout" err="$work/$name.stderr" pid ready
  local -a pin=()
  [[ -n "$core" ]] && pin=(taskset -c "$core")
  "${pin[@]}" "$binary" serve --config "$config" --cores 1 >"$out" 2>"$err" &
  pid=$!
  started_pids+=("$pid")
  for _ in $(seq 100); do
    grep -qs '^shardgate ready:' "$out" && break
    kill -0 "$pid" 2>/dev/null || {
      cat "$err" >&2
      die "shardgate $name exited at start-up${core:+ (pinned to core $core)}"
    }
    sleep 0.1
  done
  ready=$(grep -m1 '^shardgate ready:' "$out") ||
    { cat "$err" >&2; die "shardgate $name printed no ready line within 10 s"; }
  echo "$name: $ready${core:+ (core $core)}" >&2
  printf -v "${name}_pid" '%s' "$pid"
  printf -v "${name}_url" '%s' "$(sed -E 's/.* mcp=([^ ]+).*/\1/' <<<"$ready")"
}

cpu_ticks() { # cpu_ticks PID: utime + stime of the whole process (fields 14 and 15)
  sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

run_wrk() { # run_wrk URL DURATION OUTFILE [CONNECTIONS]; pinned to WRK_CORE when it is set
  local pin=()
  [[ -n "${WRK_CORE:-}" ]] && pin=(taskset -c "$WRK_CORE")
  LOAD_CHECK=0 "${pin[@]}" wrk --latency -t1 -c"${4:-$CONNECTIONS}" -d"$2" -s "$script" "$1" >"$3" ||
    { cat "$3" >&2; die "wrk failed against $1"; }
  if grep -qE 'Non-2xx|Socket errors' "$3"; then
    cat "$3" >&2
    die "load run ${LOAD_REQUEST:-echo} against $1 had errors; figures would be meaningless"
  fi
}

# check_answers URL: a short run on one connection reading every answer; stops the harness
# when any is wrong (a JSON-RPC error answered 200 would otherwise pass as a fast request).
check_answers() {
  local out="$work/check.txt"
  LOAD_CHECK=1 wrk -t1 -c1 -d1s -s "$script" "$1" >"$out" ||
    { cat "$out" >&2; die "wrk failed against $1"; }
  grep -q '^bad answers: 0$' "$out" ||
    { cat "$out" >&2; die "request ${LOAD_REQUEST:-echo} against $1 is not answered as expected"; }
}

requests_in() { awk '/requests in/ { print $1 }' "$1"; }
rate_in() { awk '/Requests\/sec/ { print $2 }' "$1"; }
percentile_in() { awk -v p="$2" '$1 == p { print $2 }' "$1"; } # percentile_in FILE 50%

to_us() { # to_us 314.00us|1.08ms|2.00s -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6
    else print "nan"
  }'
}

cpu_us_per_request() { # cpu_us_per_request TICKS REQUESTS
  awk -v t="$1" -v hz="$clk_tck" -v n="$2" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }'
}

# measure URL PID...: one wrk run of DURATION; sets m_rps, m_p50, m_p99 (wrk's text) and
# m_cpu[PID] (server CPU-us per request of each process named).
declare -A m_cpu
measure() {
  local url=$1 out="$work/measure.txt" pid requests
  shift
  local -A before
  for pid in "$@"; do before[$pid]=$(cpu_ticks "$pid"); done
  run_wrk "$url" "$DURATION" "$out"
  requests=$(requests_in "$out")
  for pid in "$@"; do
    m_cpu[$pid]=$(cpu_us_per_request $(($(cpu_ticks "$pid") - before[$pid])) "$requests")
  done
  m_rps=$(rate_in "$out")
  m_p50=$(percentile_in "$out" 50%)
  m_p99=$(percentile_in "$out" 99%)
}

# count_syscalls URL PID...: a separate run of STRACE_DURATION under `strace -c -f` on each
# process named (strace slows them, so its throughput is not reported); sets m_sys[PID] to
# syscalls per request.
declare -A m_sys
count_syscalls() {
  local url=$1 out="$work/strace-run.txt" pid requests calls
  shift
  local -A tracer
  for pid in "$@"; do
    strace -c -f -p "$pid" -o "$work/$pid.strace" 2>/dev/null &
    tracer[$pid]=$!
    tracer_pids+=("$!")
  done
  sleep 0.5 # let strace attach to every thread before load starts
  run_wrk "$url" "$STRACE_DURATION" "$out"
  for pid in "$@"; do
    kill -INT "${tracer[$pid]}"
    wait "${tracer[$pid]}" || true
  done
  requests=$(requests_in "$out")
  for pid in "$@"; do
    calls=$(awk '$NF == "total" { print $4 }' "$work/$pid.strace")
    [[ -n "$calls" ]] || die "strace counted nothing for process $pid (ptrace not permitted?)"
    m_sys[$pid]=$(awk -v c="$calls" -v n="$requests" 'BEGIN { printf "%.2f", c / n }')
  done
}

# open_session URL: initialize (2025-11-25) and notifications/initialized; prints the
# Mcp-Session-Id.
open_session() {
  local url=$1 session
  local -a headers=(-H 'Content-Type: application/json'
    -H 'Accept: application/json, text/event-stream')
  session=$(curl -sS -D - -o /dev/null "${headers[@]}" "$url" -d '{"jsonrpc":"2.0","id":0,
    "method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},
    "clientInfo":{"name":"wrk","version":"4"}}}' |
    tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" { print $2 }') ||
    die "initialize against $url failed"
  [[ -n "$session" ]] || die "initialize against $url answered no Mcp-Session-Id"
  curl -sS -f -o /dev/null "${headers[@]}" -H "Mcp-Session-Id: $session" \
    -H 'MCP-Protocol-Version: 2025-11-25' "$url" \
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' ||
    die "notifications/initialized against $url failed"
  echo "$session"
}
