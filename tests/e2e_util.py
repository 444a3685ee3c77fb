"""Helpers for end-to-end tests: a real `dagster dev` (webserver + daemon) on a free port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - keep polling while the server starts
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@contextmanager
def dagster_dev(env: dict, workspace: Path, log_path: Path):
    """Start `dagster dev`; stop it by signalling its own PID and waiting."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "dagster"), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: urllib.request.urlopen(f"{url}/server_info", timeout=5).status == 200, 180,
                   what="dagster webserver")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        data = json.loads(resp.read())
    if data.get("errors"):
        raise AssertionError(f"GraphQL errors: {data['errors']}")
    return data["data"]


def chromium_page(url: str, profile: Path, expect: list[str], screenshot: Path, timeout: float = 90) -> str:
    """Open ``url`` in headless Chromium over the DevTools protocol, dismiss first-visit
    dialogs, wait until every string of ``expect`` is on the page, save a screenshot,
    and return the page text."""
    import base64

    from websockets.sync.client import connect

    port = free_port()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--remote-debugging-port={port}", "--window-size=1600,1000",
             "about:blank"]
    proc = subprocess.Popen(["chromium", *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def page_ws():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
                pages = [p for p in json.loads(resp.read()) if p.get("type") == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        ws_url = wait_until(page_ws, 60, interval=0.5, what="chromium DevTools endpoint")
        with connect(ws_url, max_size=None, open_timeout=30) as ws:
            counter = iter(range(1, 1_000_000))

            def call(method, **params):
                msg_id = next(counter)
                ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv(timeout=60))
                    if msg.get("id") == msg_id:
                        if "error" in msg:
                            raise AssertionError(f"{method}: {msg['error']}")
                        return msg.get("result", {})

            call("Page.enable")
            call("Page.navigate", url=url)
            dismiss = ("for (const b of document.querySelectorAll('button')) "
                       "{ if (['Skip', 'Dismiss', 'Close'].includes(b.innerText.trim())) b.click(); }")

            def text():
                call("Runtime.evaluate", expression=dismiss)
                value = call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''")
                body = value.get("result", {}).get("value", "")
                return body if all(e in body for e in expect) else None

            deadline = time.monotonic() + timeout
            body = None
            while time.monotonic() < deadline and body is None:
                body = text()
                if body is None:
                    time.sleep(1)
            time.sleep(1)
            shot = call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            if body is None:
                value = call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''")
                return value.get("result", {}).get("value", "")
            return body
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def env_without_dj(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJ_", "DAGSTER_"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env
