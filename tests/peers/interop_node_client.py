#!/usr/bin/env python3
"""Interop: the Node.js `ws` client against cyclone's `echo_server` (plain and --deflate).

    .venv/bin/python tests/peers/interop_node_client.py --server target/release/examples/echo_server

Starts `echo_server` (then `echo_server --deflate`) on a free 127.0.0.1 port and runs
tests/peers/node/interop_ws_client.js against it (`ws` must be installed in
tests/peers/node: scripts/interop runs `npm install` there). The checks themselves are in
that script's header; each of its `ok` / `FAIL` lines is one check here. Prints
`N passed, N failed`; exits 1 on any failure.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, parse_args, run_checking_client, start_server  # noqa: E402

CLIENT = os.path.join(HERE, "node", "interop_ws_client.js")


def run_client(checks, node, url, deflate, logfile, timeout):
    cmd = [node, CLIENT, "--url", url] + (["--deflate"] if deflate else [])
    run_checking_client(checks, f"node client ({'deflate' if deflate else 'plain'})", cmd, logfile, timeout)


def main():
    args = parse_args(__doc__, "echo_server command",
                      [("--node", dict(default="node")),
                       ("--timeout", dict(type=int, default=120, help="seconds per client run"))])
    checks = Checks("node ws client")
    for deflate in (False, True):
        mode = "deflate" if deflate else "plain"
        server = start_server(checks, f"echo_server ({mode})", args.server,
                              ["--deflate"] if deflate else [],
                              logfile=os.path.join(args.logdir, f"node-client-server-{mode}.log"))
        if server is None:
            continue
        with server:
            run_client(checks, args.node, server.url, deflate,
                       os.path.join(args.logdir, f"node-client-{mode}.out"), args.timeout)
            if not server.alive():
                checks.fail(f"echo_server ({mode}) still running after the node client", "it exited")
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
