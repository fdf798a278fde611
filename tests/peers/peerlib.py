"""Small shared helpers for the Python peer tests in tests/peers/ (no third-party imports).

- Checks: records named checks, prints `ok - NAME` / `FAIL - NAME: why`, and the closing
  `N passed, N failed` line; `finish()` prints that line and returns 1 if anything failed.
- Server: starts a server command on a free 127.0.0.1 port, waits until it accepts
  connections (bounded), and stops it by PID (SIGTERM, then SIGKILL).
- stop_process: stops a process this script started, by its PID (SIGTERM, then SIGKILL).
- run_checking_client: runs a client that prints its own `ok -` / `FAIL -` lines (the
  Node.js peers) and counts them.
- parse_args, start_server, tornado_listen: the shared opening of the interop scripts;
  check_alive, run_main: their shared ending.
- http_request: one plain HTTP/1.1 request to 127.0.0.1 (status, headers, body bytes).
- check_output: runs a command (cyclone's `render`) and checks its standard output against
  the bytes Tornado made.
- tls_pair: a throwaway self-signed certificate and key for localhost and 127.0.0.1,
  made with the `openssl` command (scripts/interop and scripts/browser install Debian's
  openssl when it is missing).
"""

import argparse
import asyncio
import http.client
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = []

    async def run(self, title, coro_fn, timeout=60):
        """Runs one async check, bounded by `timeout` seconds."""
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(coro_fn(), timeout)
        except asyncio.TimeoutError:
            self.fail(title, f"timed out after {timeout} s")
            return False
        except Exception as exc:  # report, keep going with the next check
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.fail(title, detail)
            return False
        self.ok(title, time.monotonic() - t0)
        return True

    def ok(self, title, secs=None):
        self.passed += 1
        extra = f" ({secs:.2f} s)" if secs is not None else ""
        print(f"ok - {self.name}: {title}{extra}", flush=True)

    def fail(self, title, why):
        self.failed.append(title)
        print(f"FAIL - {self.name}: {title}: {why}", flush=True)

    def finish(self):
        if self.failed:
            print(f"{self.name}: FAILED: " + "; ".join(self.failed), flush=True)
        print(f"{self.passed} passed, {len(self.failed)} failed", flush=True)
        return 1 if self.failed else 0


def http_request(port, method, path, body=None, headers=None, timeout=10):
    """One request to 127.0.0.1:PORT on a connection of its own; returns (status, the
    response's headers as an http.client message (`get`, `get_all`), the body as bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def check_output(checks, title, cmd, want, timeout=30):
    """Runs `cmd`; the check passes when it exits 0 having printed exactly `want` (bytes)."""
    try:
        got = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        checks.fail(title, f"{os.path.basename(cmd[0])} timed out")
        return
    if got.returncode != 0:
        checks.fail(title, f"{os.path.basename(cmd[0])} exited {got.returncode}: "
                           f"{got.stderr.decode(errors='replace')}")
    elif got.stdout != want:
        checks.fail(title, f"\n  tornado: {want!r}\n  cyclone: {got.stdout!r}")
    else:
        checks.ok(title)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc):
    """Stops PROC, a `subprocess.Popen` this process started, by its PID: SIGTERM, then
    SIGKILL if it has not exited 5 s later. Nothing happens if it has already exited."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


class Server:
    """A server under test started by this process, on a free port, stopped by PID."""

    def __init__(self, cmd, args=(), logfile=None, env=None, startup_timeout=30):
        self.port = free_port()
        self.cmd = list(cmd) + ["--port", str(self.port), "--address", "127.0.0.1"] + list(args)
        self.logfile = logfile
        out = open(logfile, "wb") if logfile else subprocess.DEVNULL
        full_env = dict(os.environ)
        full_env.setdefault("RUST_LOG", "warn")
        full_env.update(env or {})
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=full_env)
        except OSError as exc:
            raise RuntimeError(f"cannot start {self.cmd[0]}: {exc.strerror}") from None
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{' '.join(self.cmd)} exited with code {self.proc.returncode}"
                                   f" before listening (log: {logfile})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{' '.join(self.cmd)} not listening on port {self.port}"
                                       f" after {startup_timeout} s (log: {logfile})")
                time.sleep(0.05)

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}"

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def tls_pair(directory):
    """Writes a fresh self-signed P-256 certificate and key for DNS:localhost and
    IP:127.0.0.1 (valid 2 days) to DIRECTORY/cert.pem and DIRECTORY/key.pem; returns
    (cert, key). The certificate is its own trust anchor: pass cert.pem as the CA file
    (Python `cafile`, Node `ca`, cyclone `ca_certs`). `CA:FALSE` is spelled out because
    openssl's default `req -x509` marks the certificate a CA, which rustls (webpki)
    refuses as a server's own certificate. Raises RuntimeError when openssl is missing or
    fails."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("the openssl command is missing (Debian: apt-get install openssl)")
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    cmd = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
           "-addext", "basicConstraints=critical,CA:FALSE"]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise RuntimeError("openssl req -x509 took more than 30 s") from None
    if proc.returncode != 0 or not (os.path.exists(cert) and os.path.exists(key)):
        raise RuntimeError(f"openssl req -x509 failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return cert, key


def die(msg):
    print(msg, file=sys.stderr, flush=True)
    print("0 passed, 1 failed", flush=True)
    sys.exit(1)


def check_alive(checks, server, name, log):
    """Fails the check `NAME still running` if SERVER exited during the checks."""
    if not server.alive():
        checks.fail(f"{name} still running", f"exited with {server.proc.returncode} (log: {log})")


def run_checking_client(checks, name, cmd, logfile, timeout):
    """Runs CMD, a client that prints its own `ok - TITLE` / `FAIL - TITLE: why` lines (the
    Node.js peers), bounded by TIMEOUT seconds; each of its lines counts in CHECKS, and its
    output goes to LOGFILE. A client that times out, cannot start, or fails before any line
    fails the check NAME."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        checks.fail(name, f"timed out after {timeout} s; output: {out[-500:]}")
        return
    except OSError as exc:
        checks.fail(name, f"cannot run {cmd[0]}: {exc.strerror}")
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
        checks.fail(name, f"exited with {proc.returncode}: {proc.stderr.strip()[-500:]}")


def parse_args(doc, server_help=None, options=(), logdir="target/interop", tornado_log=None):
    """The interop scripts' command line, described by the first line of DOC: `--server`
    (required, SERVER_HELP) unless SERVER_HELP is None, each `(flag, add_argument keywords)`
    of OPTIONS, and `--logdir` (default LOGDIR), which is created. TORNADO_LOG, if given,
    is the level for Tornado's own loggers (its access and error lines would drown the
    checks' output)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    if server_help is not None:
        p.add_argument("--server", required=True, help=server_help)
    for flag, keywords in options:
        p.add_argument(flag, **keywords)
    p.add_argument("--logdir", default=logdir)
    args = p.parse_args()
    if args.logdir:
        os.makedirs(args.logdir, exist_ok=True)
    if tornado_log is not None:
        logging.getLogger("tornado").setLevel(tornado_log)
    return args


def start_server(checks, name, command, extra=(), **keywords):
    """`Server(COMMAND split as a shell would, EXTRA, **KEYWORDS)`; if it cannot start, the
    check `start NAME` fails and the answer is None."""
    try:
        return Server(shlex.split(command), extra, **keywords)
    except RuntimeError as exc:
        checks.fail(f"start {name}", str(exc))
        return None


def tornado_listen(app):
    """Tornado APP listening on 127.0.0.1 at a free port: (port, its HTTPServer)."""
    port = free_port()
    return port, app.listen(port, address="127.0.0.1")


def run_main(main):
    """Runs the async MAIN() and exits with its code; Ctrl-C counts as a failure."""
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        die("interrupted")
