"""Object-store upload speed: many objects written concurrently (``Store.put_many``, what one
insert does with its objects) against the same objects written one at a time (``Store.put``).

``cases()`` returns ``(name, ours, peer)`` triples of zero-argument callables, as in
``bench_blob.py``: ``ours`` is the concurrent way, ``peer`` the sequential one. ``main()`` times
each callable 3 times and prints min, median and the ratio peer/ours (above 1: concurrency wins).

Cases (``N`` objects of 1 MiB, ``N = 200 * BENCH_SCALE``):

- ``s3 put_many`` vs ``s3 put``: an S3 store. The server is ``BENCH_S3_ENDPOINT`` (with
  ``BENCH_S3_BUCKET``, created if missing; credentials from ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY``), else a moto server started for the run (``tests/s3server.py``).
  Moto is a single Python process, so its numbers show the shape, not a real S3's speed.
- ``file put_many`` vs ``file put``: a local folder store in a temporary directory.
- ``insert <hash@s3>``: one insert of N rows into a table with a ``<hash@s3>`` attribute
  (SQLite), with batched uploads vs ``config['upload_batch_bytes'] = 1`` (one upload at a time).
  Every run inserts new content, so deduplication never skips an upload.

Run: ``python bench/bench_external.py``
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import dj_dagster as dj
from dj_dagster.settings import config
from dj_dagster.stores import clear_store_cache, get_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

MIB = 1024 * 1024
REPEATS = 3
_cleanup = contextlib.ExitStack()
atexit.register(_cleanup.close)


def _s3_spec() -> dict:
    endpoint = os.environ.get("BENCH_S3_ENDPOINT")
    if endpoint:
        key = os.environ.get("AWS_ACCESS_KEY_ID", "")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        bucket = os.environ.get("BENCH_S3_BUCKET", "dj-bench")
    else:
        from s3server import TEST_ACCESS_KEY, TEST_SECRET_KEY, s3_server

        endpoint = _cleanup.enter_context(s3_server())
        key, secret, bucket = TEST_ACCESS_KEY, TEST_SECRET_KEY, "dj-bench"
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key or None,
                          aws_secret_access_key=secret or None, region_name="us-east-1")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        client.create_bucket(Bucket=bucket)
    return {"protocol": "s3", "endpoint_url": endpoint, "location": f"{bucket}/bench-{uuid.uuid4().hex[:8]}",
            "access_key": key or None, "secret_key": secret or None}


def cases() -> list[tuple[str, object, object]]:
    n = max(2, int(200 * float(os.environ.get("BENCH_SCALE", "1"))))
    tmp = Path(tempfile.mkdtemp(prefix="dj-bench-external-"))
    _cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
    saved = {k: config.get(k) for k in ("stores", "default_store", "upload_batch_bytes")}

    def restore() -> None:
        for k, v in saved.items():
            config[k] = v
        clear_store_cache()

    _cleanup.callback(restore)
    config["stores"] = {"bench_s3": _s3_spec(), "bench_file": {"protocol": "file", "location": str(tmp / "store")}}
    config["default_store"] = "bench_file"
    clear_store_cache()

    payload = os.urandom(MIB)
    items = {f"bench/{i:04d}": payload[:-8] + i.to_bytes(8, "little") for i in range(n)}
    out = []
    for kind in ("s3", "file"):
        store = get_store(f"bench_{kind}")

        def concurrent(store=store):
            store.put_many(items)

        def sequential(store=store):
            for path, data in items.items():
                store.put(path, data)

        out.append((f"{kind} {n}x1MiB put_many vs put", concurrent, sequential))

    connection = dj.Connection(f"sqlite:///{tmp / 'bench.sqlite'}")
    _cleanup.callback(connection.close)
    schema = dj.Schema("bench_external", connection=connection)

    @schema
    class Stored(dj.Manual):
        definition = """
        item_id : int64
        ---
        data : <hash@bench_s3>
        """

    counter = itertools.count()

    def rows() -> list[dict]:
        run = next(counter).to_bytes(8, "little")  # new content every run: no deduplication
        return [{"item_id": next(counter), "data": run + data[8:]} for data in items.values()]

    def insert_batched():
        config["upload_batch_bytes"] = None
        Stored.insert(rows())

    def insert_one_at_a_time():
        config["upload_batch_bytes"] = 1
        try:
            Stored.insert(rows())
        finally:
            config["upload_batch_bytes"] = None

    out.append((f"insert {n} rows <hash@s3> batched vs 1 by 1", insert_batched, insert_one_at_a_time))
    return out


def main() -> None:
    try:
        from .harness import print_triples
    except ImportError:  # run as a script: bench/ is on sys.path
        from harness import print_triples
    print_triples(cases(), REPEATS)


if __name__ == "__main__":
    main()
