#!/usr/bin/env python3
"""Browser test: headless Chromium drives the `hello`, `chat`, `chatdemo` and `tls_echo` example pages.

    .venv/bin/python tests/peers/browser_test.py \
        --hello target/release/examples/hello --chat target/release/examples/chat \
        --tls-echo target/release/examples/tls_echo

(scripts/browser installs Chromium, builds the examples and runs this.) Starts `hello` and
`chat` on free 127.0.0.1 ports, starts headless Chromium with a fresh profile and
`--remote-debugging-port=0`, reads the DevTools port from DevToolsActivePort, and drives
the pages through the DevTools protocol (the `websockets` package is the CDP client):
  1. hello: click #connect, wait for `open`, click #send, wait until #log shows
     `You said: Hello, world`, click #close, wait for `close: 1000`;
  2. chat: two tabs; each sends a line and both tabs show it;
  3. tls_echo over TLS (with --tls-echo): a throwaway self-signed pair (peerlib.tls_pair,
     openssl), `tls_echo --cert --key`, its page loaded from https://127.0.0.1:n/ (Chromium
     runs with --ignore-certificate-errors); the hello steps on its wss:// echo, expecting
     `message: Hello, world`, and DevTools' Network events show the socket is wss:// and
     got a 101;
  4. chatdemo and longpoll_chat (see scripts/browser);
  5. http_hello's /members (with --members): a stranger's socket fails, a Tornado-signed
     cookie opens it, and the cookie the 101 sets again replaces the page's (HttpOnly, 30
     days).
Element ids and log formats: tests/peers/PAGE-CONTRACT.md. Screenshots go to
target/browser/hello.png, chat.png and tls_echo.png. Every wait is bounded; Chromium and
the examples are stopped by PID at the end. Prints `N passed, N failed`; exits 1 on failure
(including when Chromium is missing).
"""

import argparse
import asyncio
import base64
import itertools
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerlib import Checks, Server, tls_pair  # noqa: E402

from websockets.asyncio.client import connect  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1024,768", "--remote-debugging-port=0",
    # For tls_echo's throwaway self-signed certificate (https:// page and its wss:// socket).
    "--ignore-certificate-errors",
]


class Chromium:
    """Headless Chromium started by this process; stopped by PID (its own process group)."""

    def __init__(self, binary, logfile):
        self.profile = tempfile.mkdtemp(prefix="cyclone-chromium-")
        cmd = [binary] + CHROMIUM_FLAGS + [f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(logfile, "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.logfile = logfile

    async def ws_url(self, timeout=30):
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.proc.returncode} (log: {self.logfile})")
            try:
                with open(path) as f:
                    lines = f.read().split("\n")
                if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                    return f"ws://127.0.0.1:{int(lines[0])}{lines[1].strip()}"
            except (OSError, ValueError):
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"no DevToolsActivePort in {self.profile} after {timeout} s (log: {self.logfile})")

    def stop(self):
        pid = self.proc.pid
        if self.proc.poll() is None:
            try:
                os.kill(pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        # Renderer/zygote helpers are in the process group we created for Chromium (pgid == pid).
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        shutil.rmtree(self.profile, ignore_errors=True)


class CDP:
    """Minimal DevTools-protocol client over one browser-level WebSocket (flattened sessions)."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending = {}
        self.events = []  # (sessionId, method, params) of every event, in arrival order
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url):
        ws = await connect(url, max_size=None, open_timeout=10, ping_interval=None)
        return cls(ws)

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "method" in msg and "id" not in msg:
                    self.events.append((msg.get("sessionId"), msg["method"], msg.get("params", {})))
                    continue
                fut = self.pending.pop(msg.get("id"), None)
                if fut and not fut.done():
                    fut.set_result(msg)
        except Exception as exc:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(RuntimeError(f"DevTools connection lost: {exc!r}"))

    async def send(self, method, params=None, session=None, timeout=20):
        mid = next(self.ids)
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def close(self):
        try:
            await asyncio.wait_for(self.send("Browser.close"), 5)
        except Exception:
            pass
        self.reader.cancel()
        await self.ws.close()


class Tab:
    def __init__(self, cdp, session, target):
        self.cdp, self.session, self.target = cdp, session, target

    @classmethod
    async def open(cls, cdp, url, accept_language=None):
        """A new tab at `url`; `accept_language` replaces the browser's Accept-Language
        header for this tab (what a browser set to that language sends)."""
        target = (await cdp.send("Target.createTarget", {"url": "about:blank", "newWindow": True}))["targetId"]
        session = (await cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        tab = cls(cdp, session, target)
        await cdp.send("Page.enable", session=session)
        await cdp.send("Runtime.enable", session=session)
        await cdp.send("Network.enable", session=session)
        if accept_language:
            agent = (await cdp.send("Browser.getVersion"))["userAgent"]
            await cdp.send("Network.setUserAgentOverride",
                           {"userAgent": agent, "acceptLanguage": accept_language}, session=session)
        nav = await cdp.send("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            raise RuntimeError(f"navigate {url}: {nav['errorText']}")
        await tab.wait("document.readyState === 'complete'", 15, f"{url} to load")
        return tab

    async def eval(self, expr):
        res = await self.cdp.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                                       "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise RuntimeError(f"page error in {expr!r}: {d.get('exception', {}).get('description') or d.get('text')}")
        return res.get("result", {}).get("value")

    async def wait(self, expr, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            if await self.eval(expr):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout} s for {what}")
            await asyncio.sleep(0.1)

    async def need(self, element_id):
        if not await self.eval(f"!!document.getElementById({json.dumps(element_id)})"):
            raise AssertionError(f"page has no element with id {element_id!r} (see tests/peers/PAGE-CONTRACT.md)")

    async def click(self, element_id):
        await self.need(element_id)
        await self.eval(f"document.getElementById({json.dumps(element_id)}).click()")

    async def text(self, element_id):
        return await self.eval(f"(document.getElementById({json.dumps(element_id)}) || {{}}).textContent || ''")

    async def screenshot(self, path):
        await self.cdp.send("Page.bringToFront", session=self.session)
        res = await self.cdp.send("Page.captureScreenshot", {"format": "png"}, session=self.session, timeout=30)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(res["data"]))
        return os.path.getsize(path)


def has(element_id, needle):
    return (f"(document.getElementById({json.dumps(element_id)}) || {{textContent: ''}})"
            f".textContent.includes({json.dumps(needle)})")


async def hello_test(checks, cdp, url, outdir, name="hello", reply="You said: Hello, world", on_open=None):
    """The hello steps of PAGE-CONTRACT.md; `reply` is the log text the echo must produce.
    `on_open(tab)`, if given, runs once the socket is open (extra checks)."""
    tab = None

    async def load():
        nonlocal tab
        tab = await Tab.open(cdp, url)
        for eid in ("connect", "message", "send", "close", "log"):
            await tab.need(eid)
        value = await tab.eval("document.getElementById('message').value")
        if value != "Hello, world":
            raise AssertionError(f"#message default value is {value!r}, expected 'Hello, world'")
    if not await checks.run(f"{name}: page loads with #connect #message #send #close #log", load, 30):
        return None

    async def connect_():
        await tab.click("connect")
        await tab.wait(has("log", "open"), 10, "'open' in #log")
    if not await checks.run(f"{name}: #connect opens the WebSocket", connect_, 20):
        return tab
    if on_open:
        await on_open(tab)

    async def send():
        await tab.click("send")
        await tab.wait(has("log", reply), 10, f"{reply!r} in #log")
    await checks.run(f"{name}: #send shows {reply!r}", send, 20)

    async def close():
        await tab.click("close")
        await tab.wait(has("log", "close: 1000"), 10, "'close: 1000' in #log")
    await checks.run(f"{name}: #close ends with close: 1000", close, 20)

    async def shot():
        size = await tab.screenshot(os.path.join(outdir, f"{name}.png"))
        log = (await tab.text("log")).strip().replace("\n", " | ")
        print(f"   {name} #log: {log}   ({name}.png, {size} bytes)", flush=True)
    await checks.run(f"{name}: screenshot target/browser/{name}.png", shot, 40)
    return tab


async def tls_echo_test(checks, cdp, port, outdir):
    """tls_echo's page over https:// and its echo over wss://, through the hello steps."""
    url = f"https://127.0.0.1:{port}/"

    async def over_tls(tab):
        async def check():
            proto = await tab.eval("location.protocol")
            if proto != "https:":
                raise AssertionError(f"location.protocol is {proto!r}")
            if not await tab.eval(has("proto", "cyclone over https")) and \
                    "cyclone over https" not in (await tab.eval("document.body.textContent") or ""):
                raise AssertionError("the page does not say 'cyclone over https'")
            mine = [(m, p) for sid, m, p in cdp.events if sid == tab.session and m.startswith("Network.webSocket")]
            created = [p.get("url", "") for m, p in mine if m == "Network.webSocketCreated"]
            want = f"wss://127.0.0.1:{port}/echo"
            if want not in created:
                raise AssertionError(f"no WebSocket to {want} created (created: {created})")
            statuses = [p.get("response", {}).get("status") for m, p in mine
                        if m == "Network.webSocketHandshakeResponseReceived"]
            if 101 not in statuses:
                raise AssertionError(f"no 101 handshake response (got {statuses})")
        await checks.run("tls_echo: page is https:// and its socket is wss:// (101, DevTools Network)", check, 10)

    await hello_test(checks, cdp, url, outdir, name="tls_echo", reply="message: Hello, world",
                     on_open=over_tls)


MEMBERS_SECRET = "browser members secret"


async def members_test(checks, cdp, port):
    """http_hello's /members (`--cookie-secret MEMBERS_SECRET`): a stranger's handshake is
    redirected, which Chromium reports as a failed socket (1006); with a Tornado-signed `user`
    cookie the socket opens and greets the user, and the cookie the 101 sets again replaces
    the page's: Chromium keeps it HttpOnly, for 30 days, signed for the same user, and saw
    the handler's `X-Members` header."""
    from tornado.web import create_signed_value, decode_signed_value

    base = f"http://127.0.0.1:{port}"
    tab = None
    first_event = ("new Promise(done => { const ws = new WebSocket('ws://127.0.0.1:%d/members');"
                   " ws.onmessage = e => { done('message: ' + e.data); ws.close(1000); };"
                   " ws.onclose = e => done('close: ' + e.code); })" % port)

    async def user_cookie():
        got = await cdp.send("Network.getCookies", {"urls": [base + "/"]}, session=tab.session)
        mine = [c for c in got["cookies"] if c["name"] == "user"]
        assert len(mine) == 1, got["cookies"]
        return mine[0]

    async def stranger():
        nonlocal tab
        tab = await Tab.open(cdp, base + "/")
        got = await asyncio.wait_for(tab.eval(first_event), 10)
        assert got == "close: 1006", got
    if not await checks.run("members: a stranger's socket fails (302 to the login page)", stranger, 30):
        return

    async def member():
        signed = create_signed_value(MEMBERS_SECRET, "user", "ann").decode()
        await tab.eval(f"document.cookie = 'user=\"{signed}\"; path=/'")
        before = await user_cookie()
        assert before["session"] and not before["httpOnly"], before
        got = await asyncio.wait_for(tab.eval(first_event), 10)
        assert got == "message: welcome, ann", got
        after = await user_cookie()
        assert after["httpOnly"] and not after["session"], after
        days = (after["expires"] - time.time()) / 86400
        assert 29.9 < days < 30.1, after
        value = after["value"].strip('"')
        assert decode_signed_value(MEMBERS_SECRET, "user", value) == b"ann", after
        heads = [p["response"] for sid, m, p in cdp.events
                 if sid == tab.session and m == "Network.webSocketHandshakeResponseReceived"]
        assert heads and heads[-1]["status"] == 101, heads
        added = {k.lower(): v for k, v in heads[-1]["headers"].items()}
        assert added.get("x-members") == "1", heads[-1]
    await checks.run("members: a signed cookie opens the socket; the 101 renews it (HttpOnly, 30 days)",
                     member, 30)


async def chat_test(checks, cdp, url, outdir):
    tabs = {}
    ready = ("document.body.dataset.state === 'open' || "
             "(document.getElementById('messages') || {textContent: ''}).textContent.trim().length > 0")

    async def load():
        for name in ("A", "B"):
            tabs[name] = await Tab.open(cdp, url)
            for eid in ("message", "send", "messages"):
                await tabs[name].need(eid)
        for name, tab in tabs.items():
            await tab.wait(ready, 10, f"chat tab {name} to connect")
    if not await checks.run("chat: two tabs load and connect", load, 40):
        return

    token = random.randrange(10**6, 10**7)
    for sender, receiver in (("A", "B"), ("B", "A")):
        line = f"hello from {sender} {token}"

        async def exchange(sender=sender, receiver=receiver, line=line):
            tab = tabs[sender]
            await tab.eval(f"document.getElementById('message').value = {json.dumps(line)}")
            await tab.click("send")
            await tabs[receiver].wait(has("messages", line), 10, f"tab {receiver} to show {line!r}")
            await tab.wait(has("messages", line), 10, f"tab {sender} to show its own {line!r}")
        await checks.run(f"chat: tab {sender}'s message appears in tab {receiver} and {sender}", exchange, 25)

    async def shot():
        size = await tabs["A"].screenshot(os.path.join(outdir, "chat.png"))
        text = " | ".join(await tabs["A"].eval(
            "Array.from(document.getElementById('messages').children).map(e => e.textContent)") or [])
        print(f"   chat tab A #messages: {text}   (chat.png, {size} bytes)", flush=True)
    await checks.run("chat: screenshot target/browser/chat.png", shot, 40)


async def post_and_see(tabs, line, link, markup):
    """Posts `line` from tab A's #message/#send; waits in tabs B and A for the element `link`
    inside #inbox and checks #inbox shows `markup` literally (escaped by the server)."""
    await tabs["A"].eval(f"document.getElementById('message').value = {json.dumps(line)}")
    await tabs["A"].click("send")
    for name in ("B", "A"):
        await tabs[name].wait(f"!!document.querySelector({json.dumps(link)})", 10,
                              f"tab {name} to show the message with its link")
        shown = await tabs[name].text("inbox")
        assert markup in shown, f"tab {name} shows {shown!r}: the markup was not escaped"


async def chatdemo_test(checks, cdp, url, outdir):
    """chatdemo: a message sent from one tab appears, rendered by the server's message.html
    (its URL a link, its markup escaped), in both tabs, and in a tab loaded afterwards."""
    tabs = {}

    async def load():
        for name in ("A", "B"):
            tabs[name] = await Tab.open(cdp, url)
            for eid in ("message", "send", "inbox"):
                await tabs[name].need(eid)
        for name, tab in tabs.items():
            await tab.wait("document.body.dataset.state === 'open'", 10, f"chatdemo tab {name} to connect")
    if not await checks.run("chatdemo: two tabs load the template page and connect", load, 40):
        return

    token = random.randrange(10**6, 10**7)
    line = f"<b>{token}</b> see http://example.com/{token}"
    link = f"#inbox a[href='http://example.com/{token}']"

    async def exchange():
        await post_and_see(tabs, line, link, f"<b>{token}</b>")
    await checks.run("chatdemo: tab A's message appears in both tabs, rendered by message.html", exchange, 30)

    async def reload_lists_it():
        tab = await Tab.open(cdp, url)
        await tab.wait(f"!!document.querySelector({json.dumps(link)})", 10,
                       "a new tab to list the message (the page's {% for %}/{% module Template %})")
        size = await tab.screenshot(os.path.join(outdir, "chatdemo.png"))
        print(f"   chatdemo new tab #inbox: {(await tab.text('inbox')).strip()!r}   (chatdemo.png, {size} bytes)",
              flush=True)
    await checks.run("chatdemo: a tab loaded afterwards lists the message (screenshot chatdemo.png)",
                     reload_lists_it, 40)

    async def in_spanish():
        tab = await Tab.open(cdp, url, accept_language="es-ES,es;q=0.9,en;q=0.8")
        await tab.wait(f"!!document.querySelector({json.dumps(link)})", 10,
                       "the Spanish page to list the message")
        sent = await tab.eval("navigator.language + ' ' + document.documentElement.lang + ' ' + "
                              "document.getElementById('send').value + ' ' + document.title")
        assert sent.split(" ", 3)[1:] == ["es", "Enviar", "demo de chat de cyclone"], \
            f"the page for a Spanish browser: {sent!r} (navigator.language, <html lang>, #send, title)"
        print(f"   chatdemo in Spanish: {sent!r}", flush=True)
    await checks.run("chatdemo: a browser asking for Spanish gets the page translated (Accept-Language)",
                     in_spanish, 40)


async def longpoll_test(checks, cdp, url, outdir):
    """longpoll_chat: two tabs each keep a long poll open (the server counts both); a message
    posted from tab A reaches tab B through its waiting poll and an EventSource (Server-Sent
    Events) in tab A; closing tab B is noticed by the server (on_connection_close)."""
    tabs = {}
    status = "fetch('/a/status').then(r => r.json())"

    async def load():
        for name in ("A", "B"):
            tabs[name] = await Tab.open(cdp, url)
            for eid in ("message", "send", "inbox"):
                await tabs[name].need(eid)
        for name, tab in tabs.items():
            await tab.wait("document.body.dataset.state === 'polling'", 10, f"longpoll tab {name} to poll")
        await tabs["A"].wait(f"{status}.then(s => s.waiters === 2)", 10,
                             "the server to hold both tabs' polls open")
        await tabs["A"].eval("window.events = []; window.es = new EventSource('/a/message/events');"
                             "es.onmessage = e => events.push(JSON.parse(e.data)); true")
        await tabs["A"].wait("es.readyState === 1", 10, "the EventSource to open")
        await tabs["A"].wait(f"{status}.then(s => s.streams === 1)", 10, "the server to hold the stream open")
    if not await checks.run("longpoll: two tabs hold polls open, one an EventSource too", load, 40):
        return

    token = random.randrange(10**6, 10**7)
    line = f"<i>{token}</i> see http://example.org/{token}"
    link = f"#inbox a[href='http://example.org/{token}']"

    async def exchange():
        await post_and_see(tabs, line, link, f"<i>{token}</i>")
        await tabs["A"].wait(f"events.some(m => m.body === {json.dumps(line)})", 10,
                             "the EventSource to deliver the message")
        # Both tabs poll again after their answer.
        await tabs["A"].wait(f"{status}.then(s => s.waiters === 2)", 10, "both tabs to poll again")
    await checks.run("longpoll: tab A's message reaches tab B's waiting poll and A's EventSource", exchange, 30)

    async def close_noticed():
        size = await tabs["B"].screenshot(os.path.join(outdir, "longpoll.png"))
        await cdp.send("Target.closeTarget", {"targetId": tabs["B"].target})
        await tabs["A"].wait(f"{status}.then(s => s.waiters === 1 && s.streams === 1)", 10,
                             "the server to drop tab B's poll when the tab closed")
        await tabs["A"].eval("es.close(); true")
        await tabs["A"].wait(f"{status}.then(s => s.streams === 0)", 10,
                             "the server to drop the closed EventSource")
        print(f"   longpoll: tab B closed, its poll dropped (longpoll.png, {size} bytes)", flush=True)
    await checks.run("longpoll: closing a tab ends its poll and stream on the server (on_connection_close)",
                     close_noticed, 30)


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hello", required=True, help="hello example command (gets --port, --address)")
    p.add_argument("--chat", required=True, help="chat example command (gets --port, --address)")
    p.add_argument("--chatdemo", help="chatdemo example command (gets --port, --address)")
    p.add_argument("--longpoll", help="longpoll_chat example command (gets --port, --address)")
    p.add_argument("--members", help="http_hello example command (gets --port, --address,"
                   " --cookie-secret) for its /members WebSocket")
    p.add_argument("--tls-echo", help="tls_echo example command (gets --cert, --key, --port, --address);"
                   " without it the TLS case is skipped")
    p.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"))
    p.add_argument("--outdir", default="target/browser")
    args = p.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    checks = Checks("browser")

    binary = shutil.which(args.chromium)
    if not binary:
        checks.fail("chromium present", f"{args.chromium!r} not found on PATH (scripts/browser installs Debian's chromium)")
        return checks.finish()

    started, chromium, cdp = [], None, None
    try:
        try:
            hello = Server(shlex.split(args.hello), logfile=os.path.join(args.outdir, "hello.log"),
                           env={"RUST_LOG": "info"})
            started.append(hello)
            chat = Server(shlex.split(args.chat), logfile=os.path.join(args.outdir, "chat.log"),
                          env={"RUST_LOG": "info"})
            started.append(chat)
        except RuntimeError as exc:
            checks.fail("start hello and chat", str(exc))
            return checks.finish()

        def start_optional(cmd, name, extra=()):
            """The example `cmd` (if given) started, or None (a failed check) if it cannot be."""
            if not cmd:
                return None
            try:
                srv = Server(shlex.split(cmd), list(extra), logfile=os.path.join(args.outdir, f"{name}.log"),
                             env={"RUST_LOG": "info"})
            except RuntimeError as exc:
                checks.fail(f"start {name}", str(exc))
                return None
            started.append(srv)
            return srv

        chatdemo = start_optional(args.chatdemo, "chatdemo")
        longpoll = start_optional(args.longpoll, "longpoll")
        members = start_optional(args.members, "members", ["--cookie-secret", MEMBERS_SECRET])
        tls_echo = None
        if args.tls_echo:
            try:
                cert, key = tls_pair(os.path.join(args.outdir, "tls"))
                tls_echo = Server(shlex.split(args.tls_echo), ["--cert", cert, "--key", key],
                                  logfile=os.path.join(args.outdir, "tls_echo.log"), env={"RUST_LOG": "info"})
                started.append(tls_echo)
            except RuntimeError as exc:
                checks.fail("make a self-signed pair and start tls_echo", str(exc))
        chromium = Chromium(binary, os.path.join(args.outdir, "chromium.log"))
        try:
            cdp = await CDP.open(await chromium.ws_url())
            version = await cdp.send("Browser.getVersion")
            checks.ok(f"chromium started ({version.get('product')})")
        except Exception as exc:
            checks.fail("chromium starts and answers DevTools", str(exc))
            return checks.finish()
        await hello_test(checks, cdp, f"http://127.0.0.1:{hello.port}/", args.outdir)
        await chat_test(checks, cdp, f"http://127.0.0.1:{chat.port}/", args.outdir)
        if chatdemo:
            await chatdemo_test(checks, cdp, f"http://127.0.0.1:{chatdemo.port}/", args.outdir)
        if longpoll:
            await longpoll_test(checks, cdp, f"http://127.0.0.1:{longpoll.port}/", args.outdir)
        if tls_echo:
            await tls_echo_test(checks, cdp, tls_echo.port, args.outdir)
        if members:
            await members_test(checks, cdp, members.port)
        for srv in started:
            if not srv.alive():
                checks.fail(f"{srv.cmd[0]} still running", f"exited with {srv.proc.returncode} (log: {srv.logfile})")
    finally:
        if cdp:
            await cdp.close()
        if chromium:
            chromium.stop()
        for srv in started:
            srv.stop()
    return checks.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
