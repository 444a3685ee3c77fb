"""A real S3-compatible server for tests, run as a subprocess on a free loopback port.

Usage::

    from tests.s3server import s3_server   # or `from s3server import s3_server`

    with s3_server() as endpoint_url:       # e.g. "http://127.0.0.1:43125"
        boto3.client("s3", endpoint_url=endpoint_url, aws_access_key_id="test",
                     aws_secret_access_key="test", region_name="us-east-1")

The server is moto's (``python -m moto.server``) unless ``DJ_TEST_S3_SERVER=weed`` and
the ``weed`` binary of SeaweedFS is on PATH. Moto accepts any access/secret key pair.
Start-up failure raises :class:`S3ServerError` (so a fixture using it errors: tests fail,
they are not skipped). The server is stopped by its own PID when the block exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

__all__ = ["s3_server", "S3ServerError", "free_port", "TEST_ACCESS_KEY", "TEST_SECRET_KEY"]

# Credentials the tests use against the server (moto accepts any).
TEST_ACCESS_KEY = "dj-test-access"
TEST_SECRET_KEY = "dj-test-SECRET-9f3c2b7a1e"

START_TIMEOUT = float(os.environ.get("DJ_TEST_S3_START_TIMEOUT", "60"))


class S3ServerError(RuntimeError):
    """The S3 test server did not start."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            resp.read(0)
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer (403 from an anonymous ListBuckets) means it is up
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _command(port: int, workdir: str) -> list[str]:
    if os.environ.get("DJ_TEST_S3_SERVER", "moto") == "weed" and shutil.which("weed"):
        return [
            shutil.which("weed") or "weed", "server", "-s3", f"-s3.port={port}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={workdir}",
            f"-master.port={free_port()}", f"-volume.port={free_port()}",
            f"-filer.port={free_port()}",
        ]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # signals proc.pid only
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def s3_server(timeout: float = START_TIMEOUT) -> Iterator[str]:
    """Start an S3 server, yield its endpoint URL (``http://127.0.0.1:PORT``), stop it."""
    workdir = tempfile.mkdtemp(prefix="dj-s3server-")
    log_path = Path(workdir) / "server.log"
    last_error = ""
    try:
        for _attempt in range(3):  # a port taken between free_port() and bind: retry
            port = free_port()
            endpoint = f"http://127.0.0.1:{port}"
            env = dict(os.environ)
            env.setdefault("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
            env.setdefault("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
            env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
            with open(log_path, "wb") as log:
                try:
                    proc = subprocess.Popen(
                        _command(port, workdir),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        cwd=workdir,
                        env=env,
                    )
                except OSError as exc:
                    raise S3ServerError(f"cannot start the S3 test server: {exc}") from exc
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if proc.poll() is not None:
                        break
                    if _answers(endpoint + "/"):
                        break
                    time.sleep(0.2)
                if proc.poll() is None and _answers(endpoint + "/"):
                    yield endpoint
                    return
                last_error = log_path.read_text(errors="replace")[-4000:]
                if proc.poll() is None:
                    raise S3ServerError(
                        f"S3 test server on {endpoint} did not answer within {timeout:.0f} s:\n"
                        f"{last_error}"
                    )
            finally:
                _stop(proc)
        raise S3ServerError(f"S3 test server exited at start-up:\n{last_error}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
