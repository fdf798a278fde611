#!/bin/bash
# Alternating loadgen-alone A/B of two echo_server binaries: ROUNDS pairs,
# old then new, each a fresh server pinned to CPU 0 driven for 4 s (after
# 1 s of warm-up) by the shared bench's loadgen pinned to CPU 1. Prints per
# run: which binary, MB/s, msgs/s, deliveries/s, p99 µs, server CPU %,
# loadgen CPU %.
#
#   OLD=/tmp/echo_old NEW=target/release/examples/echo_server \
#     benches/ab.sh 6 --conns 100 --size 16 --window 64 --binary
#   URLPATH=/broadcast benches/ab.sh 4 --broadcast --pub-path /publish --conns 1000 --size 64 --window 8
#
# Needs ../shared/bench set up (its loadgen binary) and taskset.
set -u
R=${1:?rounds}
shift
LG=${LOADGEN:-$(cd "$(dirname "$0")" && pwd)/../../shared/bench/loadgen/target/release/loadgen}
PORT=${PORT:-9301}
for _ in $(seq 1 "$R"); do
  for b in old new; do
    if [ $b = old ]; then BIN=${OLD:?binary}; else BIN=${NEW:?binary}; fi
    taskset -c 0 "$BIN" --port "$PORT" >/dev/null 2>&1 &
    PID=$!
    sleep 0.4
    out=$(taskset -c 1 "$LG" --url "ws://127.0.0.1:$PORT${URLPATH:-/}" "$@" --secs 4 --warmup 1 --pid $PID 2>&1 | tail -1)
    echo "$b $(echo "$out" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d.get("mb_per_s"), d.get("msgs_per_s"), d.get("deliveries_per_s"), d.get("p99_us"), d["server_cpu_pct"], d["loadgen_cpu_pct"])')"
    kill $PID
    wait $PID 2>/dev/null
  done
done
