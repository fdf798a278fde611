#!/usr/bin/env python3
"""Runs the Autobahn TestSuite (through kosoku) against cyclone; called by scripts/autobahn.

Two sides, each bounded in time, each leaving its reports under target/autobahn/:
  server: start `echo_server --port FREE --max-message-size 67108864 [--deflate]`,
          run `kosoku -m fuzzingclient -p 2 [-x 12.* -x 13.*] -o target/autobahn/server 127.0.0.1:FREE`
  client: run `kosoku -m fuzzingserver -o target/autobahn/client 127.0.0.1:0`, read the
          port it prints, run `autobahn_client --url ws://127.0.0.1:PORT --agent cyclone`;
          kosoku ends when the client opens /updateReports.

Then reads each side's index.json ({agent: {case: {behavior, behaviorClose, duration,
reportfile, ...}}}) and prints one summary line per side, every case whose verdict is not
OK/NON-STRICT/INFORMATIONAL (behavior and closing behaviour both count, as in kosoku's
own `passed`), and timings. Exits 1 unless every case of every side passed.

Stand-ins (to measure a reference implementation, e.g. Tornado):
  --server-cmd 'python tests/peers/tornado_echo.py'   (gets --port P --max-message-size M [--deflate])
  --client-cmd 'python tests/peers/tornado_autobahn_client.py'   (gets --url U --agent A)
"""

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerlib import free_port, stop_process as stop  # noqa: E402

PASS = {"OK", "NON-STRICT", "INFORMATIONAL"}
STARTED = []  # Popen objects this script started, to stop by PID on exit


def log(msg):
    print(f"autobahn: {msg}", flush=True)


def wait_listening(port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def start(cmd, logfile, **kw):
    log("starting: " + " ".join(shlex.quote(c) for c in cmd) + f"  (log: {logfile})")
    out = open(logfile, "wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    STARTED.append(proc)
    return proc


def stop_all():
    for proc in reversed(STARTED):
        stop(proc)


def wait(proc, timeout, what):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"{what} did not finish within {timeout} s: stopping it (pid {proc.pid})")
        stop(proc)
        return None


def summarize(side, outdir, elapsed):
    """Prints the summary of one side; returns True if every case passed."""
    index_path = os.path.join(outdir, "index.json")
    if not os.path.exists(index_path):
        print(f"autobahn {side}: no report ({index_path} missing): FAILED")
        return False
    with open(index_path) as f:
        index = json.load(f)
    cases = {}
    for agent, per_case in index.items():
        for case_id, entry in per_case.items():
            cases[(agent, case_id)] = entry
    bad = []
    for (agent, case_id), e in sorted(cases.items(), key=lambda kv: [int(p) for p in kv[0][1].split(".")]):
        b, bc = e.get("behavior"), e.get("behaviorClose")
        if b not in PASS:
            bad.append((case_id, b, f"behavior={b} behaviorClose={bc} closeCode={e.get('remoteCloseCode')}", agent))
        elif bc not in PASS:
            bad.append((case_id, "FAILED", f"behavior={b} behaviorClose={bc} closeCode={e.get('remoteCloseCode')}", agent))
    n = len(cases)
    kinds = {}
    for _, verdict, _, _ in bad:
        kinds[verdict] = kinds.get(verdict, 0) + 1
    detail = ""
    others = {k: v for k, v in kinds.items() if k != "FAILED"}
    if others:
        detail = " (of which " + ", ".join(f"{v} {k}" for k, v in sorted(others.items())) + ")"
    agents = ", ".join(sorted(index))
    print(f"autobahn {side}: {n} cases: {n - len(bad)} OK/NON-STRICT/INFORMATIONAL, {len(bad)} FAILED{detail}"
          f"  [{elapsed:.1f} s, agent {agents}, reports in {outdir}/]")
    for case_id, verdict, text, agent in bad:
        print(f"  {case_id}: {verdict}: {text}  ({os.path.join(outdir, index[agent][case_id]['reportfile'])})")
    timing_1213(side, outdir, index)
    if n == 0:
        print(f"autobahn {side}: no case ran: FAILED")
        return False
    return not bad


def timing_1213(side, outdir, index):
    """Wall time of the 12.*/13.* (permessage-deflate) cases, from their start stamps."""
    spans, total_ms = [], 0
    for agent, per_case in index.items():
        for case_id, e in per_case.items():
            if not case_id.startswith(("12.", "13.")):
                continue
            total_ms += e.get("duration") or 0
            try:
                with open(os.path.join(outdir, e["reportfile"])) as f:
                    started = json.load(f)["started"]
                t0 = datetime.datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
                spans.append((t0, t0 + (e.get("duration") or 0) / 1000))
            except (OSError, KeyError, ValueError):
                pass
    if spans:
        wall = max(e for _, e in spans) - min(s for s, _ in spans)
        print(f"autobahn {side}: 12.*/13.*: {len(spans)} cases, {wall:.1f} s wall, {total_ms / 1000:.1f} s summed case time")


def run_server_side(args, exclude):
    outdir = os.path.join(args.outdir, "server")
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    port = free_port()
    cmd = shlex.split(args.server_cmd) + ["--port", str(port), "--max-message-size", str(64 * 1024 * 1024)]
    if args.deflate:
        cmd.append("--deflate")
    server = start(cmd, os.path.join(args.outdir, "echo_server.log"),
                   env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")))
    if not wait_listening(port, server, 30):
        log(f"server under test did not listen on 127.0.0.1:{port} within 30 s (see {args.outdir}/echo_server.log)")
        stop(server)
        print("autobahn server: 0 cases: server did not start: FAILED")
        return False
    cmd = shlex.split(args.kosoku) + ["-m", "fuzzingclient", "-p", str(args.parallelism), "-o", outdir]
    cmd += [a for c in args.include for a in ("-i", c)] + [a for c in exclude for a in ("-x", c)]
    cmd.append(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    fuzz = start(cmd, os.path.join(args.outdir, "kosoku-fuzzingclient.log"))
    rc = wait(fuzz, args.timeout, "kosoku fuzzingclient")
    elapsed = time.monotonic() - t0
    alive = server.poll() is None
    stop(server)
    ok = summarize("server", outdir, elapsed)
    if rc is None:
        print(f"autobahn server: timed out after {args.timeout} s: FAILED")
        ok = False
    if not alive:
        print(f"autobahn server: the server under test exited during the run (code {server.returncode}): FAILED")
        ok = False
    return ok


def run_client_side(args, exclude):
    outdir = os.path.join(args.outdir, "client")
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    cmd = shlex.split(args.kosoku) + ["-m", "fuzzingserver", "-o", outdir]
    cmd += [a for c in args.include for a in ("-i", c)] + [a for c in exclude for a in ("-x", c)]
    cmd.append("127.0.0.1:0")
    logfile = os.path.join(args.outdir, "kosoku-fuzzingserver.log")
    t0 = time.monotonic()
    fuzz = start(cmd, logfile)
    port, deadline = None, time.monotonic() + 30
    while port is None and time.monotonic() < deadline and fuzz.poll() is None:
        with open(logfile, errors="replace") as f:
            m = re.search(r"fuzzingserver listening on ws://[^\s:]+:(\d+)", f.read())
        if m:
            port = int(m.group(1))
        else:
            time.sleep(0.1)
    if port is None:
        log(f"kosoku fuzzingserver did not report its port within 30 s (see {logfile})")
        stop(fuzz)
        print("autobahn client: 0 cases: fuzzingserver did not start: FAILED")
        return False
    cmd = shlex.split(args.client_cmd) + ["--url", f"ws://127.0.0.1:{port}", "--agent", args.agent]
    client = start(cmd, os.path.join(args.outdir, "autobahn_client.log"),
                   env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")))
    # kosoku ends when the client opens /updateReports. If the client exits without
    # doing so, do not sit out the whole timeout: allow 30 s more, then stop kosoku.
    deadline, client_gone = t0 + args.timeout, None
    rc = None
    while time.monotonic() < deadline:
        rc = fuzz.poll()
        if rc is not None:
            break
        if client.poll() is not None:
            client_gone = client_gone or time.monotonic()
            if time.monotonic() - client_gone > 30:
                log(f"autobahn_client exited (code {client.returncode}) and kosoku is still waiting: stopping it")
                break
        time.sleep(0.2)
    if rc is None:
        if client_gone is None:
            log(f"kosoku fuzzingserver did not finish within {args.timeout} s: stopping it (pid {fuzz.pid})")
        stop(fuzz)
    elapsed = time.monotonic() - t0
    crc = wait(client, 10, "autobahn_client")
    ok = summarize("client", outdir, elapsed)
    if rc is None:
        print("autobahn client: kosoku fuzzingserver did not finish (did the client open /updateReports?): FAILED")
        ok = False
    if crc not in (0, None):
        print(f"autobahn client: autobahn_client exited with code {crc} (see {args.outdir}/autobahn_client.log): FAILED")
        ok = False
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-deflate", dest="deflate", action="store_false",
                   help="no --deflate for echo_server; excludes cases 12.* and 13.* on both sides")
    p.add_argument("--side", choices=["both", "server", "client"], default="both")
    p.add_argument("--server-cmd", required=True, help="server under test (gets --port, --max-message-size, --deflate)")
    p.add_argument("--client-cmd", required=True, help="client under test (gets --url, --agent)")
    p.add_argument("--agent", default="cyclone")
    p.add_argument("--kosoku", default="kosoku", help="kosoku command (scripts/autobahn uses tests/peers/kosoku_run.py)")
    p.add_argument("--outdir", default="target/autobahn")
    p.add_argument("-i", "--include", action="append", default=[], help="case glob to run (repeatable)")
    p.add_argument("-x", "--exclude", action="append", default=[], help="case glob to skip (repeatable)")
    p.add_argument("-p", "--parallelism", type=int, default=2,
                   help="cases in flight at once on the server side (kosoku -p; scripts/autobahn passes AUTOBAHN_JOBS)")
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed for each side")
    args = p.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    exclude = list(args.exclude) + ([] if args.deflate else ["12.*", "13.*"])

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: (stop_all(), sys.exit(128 + s)))
    results = {}
    try:
        if args.side in ("both", "server"):
            results["server"] = run_server_side(args, exclude)
        if args.side in ("both", "client"):
            results["client"] = run_client_side(args, exclude)
    finally:
        stop_all()
    failed = [side for side, ok in results.items() if not ok]
    if failed:
        print(f"autobahn: FAILED ({', '.join(failed)} side)")
        return 1
    print(f"autobahn: every case OK/NON-STRICT/INFORMATIONAL ({', '.join(results)} side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
