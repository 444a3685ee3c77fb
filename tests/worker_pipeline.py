"""A pipeline for multi-process tests, run as ``python -m tests.worker_pipeline ACTION``
with DJ_DATABASE_URL and DJ_WORKER_SCHEMA in the environment."""

from __future__ import annotations

import os
import sys
import time
import uuid

import dj_dagster as dj

schema = dj.Schema(os.environ["DJ_WORKER_SCHEMA"], connection=dj.conn(os.environ["DJ_DATABASE_URL"]))


@schema
class Item(dj.Manual):
    definition = """
    item_id : int32
    ---
    value : float64
    """


@schema
class MakeLog(dj.Manual):
    definition = """
    # one row per committed make call
    item_id : int32
    entry : uuid
    ---
    pid : int32
    """


@schema
class Result(dj.Computed):
    definition = """
    -> Item
    ---
    doubled : float64
    """

    def make(self, key):
        value = (Item & key).fetch1("value")
        _hang_if_negative(key, value)
        MakeLog.insert1({**key, "entry": uuid.uuid4(), "pid": os.getpid()})
        self.insert1({**key, "doubled": 2 * value})


@schema
class Tripled(dj.Computed):
    """Three-part make: computes outside a transaction, so its reservation is committed."""

    definition = """
    -> Item
    ---
    tripled : float64
    """

    def make_fetch(self, key):
        return (Item & key).fetch1("value")

    def make_compute(self, key, value):
        _hang_if_negative(key, value)
        return 3 * value

    def make_insert(self, key, tripled):
        self.insert1({**key, "tripled": tripled})


def _hang_if_negative(key, value):
    """The test kills the worker while it sleeps here; the marker file says it started."""
    if value < 0:
        with open(os.environ["DJ_WORKER_MARK"], "w") as f:
            f.write(str(key["item_id"]))
        time.sleep(float(os.environ.get("DJ_WORKER_SLEEP", "60")))


if __name__ == "__main__":
    action = sys.argv[1]
    if action in ("populate", "populate3"):
        table = Result if action == "populate" else Tripled
        result = table.populate(reserve_jobs=True, suppress_errors=True)
        print(f"{os.getpid()} success={result['success_count']} errors={len(result['error_list'])}", flush=True)
        for key, err in result["error_list"][:3]:
            print(f"error {key}: {err}", flush=True)
