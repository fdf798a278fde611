#!/usr/bin/env python3
"""Interop: cyclone's `client` example against the non-cyclone peer servers.

    .venv/bin/python tests/peers/interop_cyclone_client.py --client target/release/examples/client

For each peer (tests/peers/tornado_echo.py plain and --deflate, tests/peers/websockets_echo.py
and tests/peers/node/ws_echo.js (Node.js `ws`), each with and without deflate): starts it with `--port 0 --exit-on-stdin-eof`, reads its
`PORT n` line (this also checks that the peer servers the Rust tests rely on work),
runs `client ws://127.0.0.1:n/echo`, writes lines on its stdin, expects each line back on its
stdout in order, then closes stdin and expects `client` to exit 0 (bounded in time).
Over TLS: makes a throwaway self-signed pair (peerlib.tls_pair, openssl), starts
tests/peers/websockets_echo.py with `--cert/--key` (with and without deflate) and runs
`client --ca-certs cert.pem wss://127.0.0.1:n/echo` the same way, and checks that
`client` without `--ca-certs` refuses that server's certificate (exits non-zero, says so).
Prints `N passed, N failed`; exits 1 on any failure.
"""

import os
import shlex
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, parse_args, stop_process, tls_pair  # noqa: E402

PY = [sys.executable]
NODE = [os.environ.get("NODE", "node")]
PEERS = {
    "tornado": PY + [os.path.join(HERE, "tornado_echo.py")],
    "tornado --deflate": PY + [os.path.join(HERE, "tornado_echo.py"), "--deflate"],
    "websockets (deflate)": PY + [os.path.join(HERE, "websockets_echo.py")],
    "websockets --no-deflate": PY + [os.path.join(HERE, "websockets_echo.py"), "--no-deflate"],
    "node ws (deflate)": NODE + [os.path.join(HERE, "node", "ws_echo.js")],
    "node ws --no-deflate": NODE + [os.path.join(HERE, "node", "ws_echo.js"), "--no-deflate"],
}
# Python websockets over TLS (the --cert/--key are added once the pair exists).
WSS_PEERS = {
    "websockets wss (deflate)": PY + [os.path.join(HERE, "websockets_echo.py")],
    "websockets wss --no-deflate": PY + [os.path.join(HERE, "websockets_echo.py"), "--no-deflate"],
}
LINES = ["Hello, world", "héllo wörld ✓ 世界", "x" * 70000] + [f"line {i}" for i in range(100)]


def start_peer(peer_cmd, logfile):
    """Starts a peer server on port 0, returns (proc, port). Raises on failure."""
    cmd = peer_cmd + ["--port", "0", "--exit-on-stdin-eof"]
    err = open(logfile, "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    box = {}

    def read_port():
        box["line"] = proc.stdout.readline().decode(errors="replace").strip()
    t = threading.Thread(target=read_port, daemon=True)
    t.start()
    t.join(20)
    line = box.get("line", "")
    if not line.startswith("PORT "):
        stop_process(proc)
        raise RuntimeError(f"{' '.join(cmd)} printed {line!r} instead of 'PORT n' (log: {logfile})")
    return proc, int(line.split()[1])


def client_roundtrip(client_cmd, url, logfile, timeout=20):
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    proc = subprocess.Popen(client_cmd + [url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(logfile, "wb"), env=env)
    got, done = [], threading.Event()

    def reader():
        for raw in proc.stdout:
            got.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
            if len(got) >= len(LINES):
                done.set()
        done.set()
    threading.Thread(target=reader, daemon=True).start()
    try:
        proc.stdin.write("".join(line + "\n" for line in LINES).encode())
        proc.stdin.flush()
        if not done.wait(timeout):
            raise AssertionError(f"only {len(got)} of {len(LINES)} lines came back within {timeout} s (log: {logfile})")
        if got[: len(LINES)] != LINES:
            first = next(i for i, (a, b) in enumerate(zip(got, LINES)) if a != b) if len(got) >= len(LINES) else len(got)
            raise AssertionError(f"stdout differs at line {first}: {got[first][:60] if first < len(got) else None!r}"
                                 f" (expected {LINES[first][:60]!r}); log: {logfile}")
        proc.stdin.close()
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("client did not exit within 10 s after stdin closed")
        if rc != 0:
            raise AssertionError(f"client exited with code {rc} (log: {logfile})")
    finally:
        stop_process(proc)


def client_refuses(client_cmd, url, logfile, timeout=20):
    """`client URL` against a server whose certificate it does not trust: must exit
    non-zero on its own (bounded), naming the certificate on stderr."""
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    with open(logfile, "wb") as err:
        proc = subprocess.Popen(client_cmd + [url], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=err, env=env)
    try:
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"client still running after {timeout} s (log: {logfile})")
        with open(logfile, errors="replace") as f:
            text = f.read()
        if rc == 0:
            raise AssertionError(f"client exited 0 talking to an untrusted server (log: {logfile})")
        if "certificate" not in text.lower():
            raise AssertionError(f"client exited {rc} without naming the certificate: {text.strip()[-300:]!r}")
    finally:
        stop_process(proc)


def one_peer(checks, name, peer_cmd, client_cmd, scheme, logdir):
    slug = name.replace(" ", "_").replace("(", "").replace(")", "").replace("-", "")
    try:
        peer, port = start_peer(peer_cmd, os.path.join(logdir, f"peer-{slug}.log"))
    except RuntimeError as exc:
        checks.fail(f"start peer {name}", str(exc))
        return None
    checks.ok(f"peer {name} prints its port ({port})")
    t0 = time.monotonic()
    try:
        client_roundtrip(client_cmd, f"{scheme}://127.0.0.1:{port}/echo",
                         os.path.join(logdir, f"client-{slug}.log"))
        checks.ok(f"client echoes {len(LINES)} lines through {name} and exits 0", time.monotonic() - t0)
    except Exception as exc:
        checks.fail(f"client through {name}", str(exc))
    return peer, port, slug


def stop_peer(peer):
    # The peer exits on stdin EOF; fall back to SIGTERM by PID.
    try:
        peer.stdin.close()
        peer.wait(timeout=5)
    except subprocess.TimeoutExpired:
        stop_process(peer)


def main():
    args = parse_args(__doc__, options=[("--client", dict(required=True,
                                                         help="cyclone client command (gets the URL)"))])
    checks = Checks("cyclone client -> peers")
    client = shlex.split(args.client)
    for name, peer_cmd in PEERS.items():
        started = one_peer(checks, name, peer_cmd, client, "ws", args.logdir)
        if started:
            stop_peer(started[0])

    # wss://: the same round trip through a TLS peer, trusting a throwaway self-signed pair.
    try:
        cert, key = tls_pair(os.path.join(args.logdir, "tls-cyclone-client"))
        checks.ok("self-signed pair for 127.0.0.1/localhost (openssl)")
    except RuntimeError as exc:
        checks.fail("self-signed pair for the wss peers", str(exc))
        return checks.finish()
    for i, (name, peer_cmd) in enumerate(WSS_PEERS.items()):
        started = one_peer(checks, name, peer_cmd + ["--cert", cert, "--key", key],
                           client + ["--ca-certs", cert], "wss", args.logdir)
        if not started:
            continue
        peer, port, slug = started
        if i == 0:
            try:
                client_refuses(client, f"wss://127.0.0.1:{port}/echo",
                               os.path.join(args.logdir, f"client-{slug}-untrusted.log"))
                checks.ok(f"client without --ca-certs refuses {name}'s self-signed certificate")
            except Exception as exc:
                checks.fail(f"client without --ca-certs against {name}", str(exc))
        stop_peer(peer)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
