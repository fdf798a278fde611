#!/bin/bash
# User-space instructions per HTTP request of `http_hello` (the HTTP twin of
# benches/callgrind.sh): runs the release example under callgrind with
# instrumentation off, warms it with 2,000 keep-alive GETs, switches
# instrumentation on, zeroes, sends N more (benches/peers/http_keepalive.py,
# one connection, one request at a time), dumps and divides. Deterministic
# where wrk's figures are noisy: compare two builds with it.
#
#   benches/callgrind_http.sh [BINARY] [N] [PATH]
#   benches/callgrind_http.sh target/release/examples/http_hello 5000 /
#
# Needs valgrind, curl and python3.
set -eu
BIN=${1:-target/release/examples/http_hello}
N=${2:-5000}
URLPATH=${3:-/}
CLIENT="$(cd "$(dirname "$0")" && pwd)/peers/http_keepalive.py"
PORT=${PORT:-9772}
OUT=$(mktemp -d)
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.%p" \
  "$BIN" --port "$PORT" >"$OUT/server.log" 2>&1 &
VPID=$!
trap 'kill $VPID 2>/dev/null; wait $VPID 2>/dev/null; rm -rf "$OUT"' EXIT
trap 'exit 1' INT TERM HUP PIPE
for _ in $(seq 1 150); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT$URLPATH" && break
  sleep 0.2
done
python3 "$CLIENT" "$PORT" 2000 "$URLPATH"
callgrind_control -i on $VPID >/dev/null 2>&1
callgrind_control -z $VPID >/dev/null 2>&1
python3 "$CLIENT" "$PORT" "$N" "$URLPATH"
callgrind_control -d $VPID >/dev/null 2>&1
sleep 1
f=$(ls -S "$OUT"/cg.* | head -1)
# KEEP=path keeps the profile for callgrind_annotate.
[ -z "${KEEP:-}" ] || cp "$f" "$KEEP"
ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
python3 -c "print(f'requests $N, instructions {$ir}, per request {$ir/$N:.1f}')"
