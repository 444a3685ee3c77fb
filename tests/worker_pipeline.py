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
        if value < 0:  # the test kills the worker while it sleeps here
            time.sleep(float(os.environ.get("DJ_WORKER_SLEEP", "60")))
        MakeLog.insert1({**key, "entry": uuid.uuid4(), "pid": os.getpid()})
        self.insert1({**key, "doubled": 2 * value})


if __name__ == "__main__":
    action = sys.argv[1]
    if action == "populate":
        result = Result.populate(reserve_jobs=True, suppress_errors=True)
        print(f"{os.getpid()} success={result['success_count']} errors={len(result['error_list'])}", flush=True)
        for key, err in result["error_list"][:3]:
            print(f"error {key}: {err}", flush=True)
