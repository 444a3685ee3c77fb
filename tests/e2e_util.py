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


def chromium_dom(url: str, profile: Path, screenshot: Path | None = None, wait_ms: int = 20000) -> str:
    """Render a page in headless Chromium; return its DOM (and save a screenshot)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--virtual-time-budget={wait_ms}", "--window-size=1600,1000"]
    if screenshot is not None:
        subprocess.run(["chromium", *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=180)
    out = subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    return out.stdout


def env_without_dj(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJ_", "DAGSTER_"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env
