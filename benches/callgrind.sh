#!/bin/bash
# User-space instructions per echoed message (PERF-NOTES, "Measuring past the
# load generator"): runs a release `echo_server` under callgrind with
# instrumentation off, drives it with the shared bench's loadgen, switches
# instrumentation on after a warm-up, zeroes, counts for a few seconds and
# divides the instructions by the messages the server itself counted
# (`/metrics`). Deterministic where wall-clock figures are noisy.
#
#   benches/callgrind.sh [BINARY] [LOADGEN ARGS...]
#   benches/callgrind.sh target/release/examples/echo_server --conns 100 --size 16 --window 64
#
# Needs valgrind and ../shared/bench set up (its loadgen binary).
# URLPATH (default /) is the path the loadgen connects to; METRIC (default
# messages received) the /metrics line to divide by, e.g. for scenario f:
#   URLPATH=/broadcast METRIC=cyclone_websocket_messages_out_total \
#     benches/callgrind.sh BIN --broadcast --pub-path /publish --conns 1000 --size 64 --window 8
# and for e: METRIC='cyclone_websocket_handshakes_total{result="ok"}' ... --churn --conns 50 --size 16
set -eu
BIN=${1:-target/release/examples/echo_server}
shift || true
[ $# -gt 0 ] || set -- --conns 100 --size 16 --window 64
LG=${LOADGEN:-$(cd "$(dirname "$0")" && pwd)/../../shared/bench/loadgen/target/release/loadgen}
[ -x "$LG" ] || { echo "no loadgen at $LG (run ../shared/bench/setup.sh or set LOADGEN)" >&2; exit 1; }
PORT=${PORT:-9771}
OUT=$(mktemp -d)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.%p" \
  "$BIN" --port "$PORT" >"$OUT/server.log" 2>&1 &
VPID=$!
trap 'kill $VPID 2>/dev/null; wait $VPID 2>/dev/null; rm -rf "$OUT"' EXIT
trap 'exit 1' INT TERM HUP PIPE
sleep 3
METRIC=${METRIC:-cyclone_websocket_messages_in_total}
"$LG" --url "ws://127.0.0.1:$PORT${URLPATH:-/}" "$@" --secs 14 --warmup 0 >"$OUT/lg.json" 2>/dev/null &
LPID=$!
count() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$METRIC" 'index($0, m " ") == 1 {print $2}'; }
sleep 4
callgrind_control -i on $VPID >/dev/null 2>&1
sleep 1
callgrind_control -z $VPID >/dev/null 2>&1
m0=$(count)
sleep 6
m1=$(count)
callgrind_control -d $VPID >/dev/null 2>&1
wait $LPID || true
f=$(ls -S "$OUT"/cg.* | head -1)
# KEEP=path keeps the profile for callgrind_annotate.
[ -z "${KEEP:-}" ] || cp "$f" "$KEEP"
ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
[ "$m1" -gt "$m0" ] || { echo "the server counted no messages (see the loadgen's output)" >&2; exit 1; }
python3 -c "m=$m1-$m0; print(f'messages {m}, instructions {$ir}, per message {$ir/max(1,m):.1f}')"
