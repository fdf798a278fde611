#!/usr/bin/env python3
"""Interop: the Node.js `ws` client against cyclone's `echo_server` (plain and --deflate).

    .venv/bin/python tests/peers/interop_node_client.py --server target/release/examples/echo_server

Starts `echo_server` (then `echo_server --deflate`) on a free 127.0.0.1 port and runs
tests/peers/node/interop_ws_client.js against it (`ws` must be installed in
tests/peers/node: scripts/interop runs `npm install` there). The checks themselves are in
that script's header; each of its `ok` / `FAIL` lines is one check here. Prints
`N passed, N failed`; exits 1 on any failure.
"""

import argparse
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, Server  # noqa: E402

CLIENT = os.path.join(HERE, "node", "interop_ws_client.js")


def run_client(checks, node, url, deflate, logfile, timeout):
    cmd = [node, CLIENT, "--url", url] + (["--deflate"] if deflate else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        checks.fail(f"node client ({'deflate' if deflate else 'plain'})", f"timed out after {timeout} s; output: {out[-500:]}")
        return
    with open(logfile, "w") as f:
        f.write(proc.stdout + proc.stderr)
    seen = 0
    for line in proc.stdout.splitlines():
        if line.startswith("ok - "):
            checks.ok(line[5:])
            seen += 1
        elif line.startswith("FAIL - "):
            title, _, why = line[7:].partition(": ")
            checks.fail(title, why)
            seen += 1
    if proc.returncode != 0 and seen == 0:
        checks.fail(f"node client ({'deflate' if deflate else 'plain'})",
                    f"exited with {proc.returncode}: {proc.stderr.strip()[-500:]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="echo_server command")
    p.add_argument("--node", default="node")
    p.add_argument("--logdir", default="target/interop")
    p.add_argument("--timeout", type=int, default=120, help="seconds per client run")
    args = p.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    checks = Checks("node ws client")
    for deflate in (False, True):
        mode = "deflate" if deflate else "plain"
        try:
            server = Server(shlex.split(args.server), ["--deflate"] if deflate else [],
                            logfile=os.path.join(args.logdir, f"node-client-server-{mode}.log"))
        except RuntimeError as exc:
            checks.fail(f"start echo_server ({mode})", str(exc))
            continue
        with server:
            run_client(checks, args.node, server.url, deflate,
                       os.path.join(args.logdir, f"node-client-{mode}.out"), args.timeout)
            if not server.alive():
                checks.fail(f"echo_server ({mode}) still running after the node client", "it exited")
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
