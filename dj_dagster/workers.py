"""``populate(processes=N)``: forked worker processes that take keys one at a time.

The parent hands out keys (by index into the list every worker inherited at fork) over
one pipe per worker and waits on the pipes and on the processes themselves, so a worker
that dies (SIGKILL, the OOM killer, a crash in native code) is noticed at once: the key
it held is recorded as an error ("worker died"), a replacement worker is started while
keys remain, and the parent always returns. Nothing is shared between workers but the
database, so a death cannot leave a lock that others wait on.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import time
from multiprocessing.connection import wait

from .errors import DataJointError, WorkerError

log = logging.getLogger(__name__)


class WorkerDiedError(DataJointError):
    """The worker process computing a key ended without reporting its outcome."""


def populate_parallel(table, keys: list[dict], processes: int, suppress_errors: bool, reserve_jobs: bool,
                      make_kwargs: dict | None, display_progress: bool = False) -> dict:
    """Compute ``keys`` of ``table`` in up to ``processes`` forked workers.

    Returns ``{'success_count': n, 'error_list': [(key, DataJointError)]}``; with
    ``suppress_errors=False`` a failed key raises once every key has been tried.
    """
    pool = _Pool(table, keys, min(processes, len(keys)), reserve_jobs, make_kwargs)
    bar = None
    if display_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(keys), desc=type(table).__name__)
    try:
        pool.run(bar)
    finally:
        pool.stop()
        if bar is not None:
            bar.close()
    out = {"success_count": pool.success, "error_list": pool.errors}
    if pool.errors and not suppress_errors:
        key, err = pool.errors[0]
        raise DataJointError(f"populate of {table.full_table_name} failed for {key}: {err}")
    return out


class _Worker:
    __slots__ = ("process", "conn", "key_index", "started", "lost_key")

    def __init__(self, process, conn):
        self.process, self.conn, self.key_index, self.started = process, conn, None, 0.0
        self.lost_key = False  # it died (or failed) holding a key: worth replacing


class _Pool:
    """The parent's side: which worker holds which key, and what came back."""

    def __init__(self, table, keys, size, reserve_jobs, make_kwargs):
        self.table, self.keys, self.size = table, keys, size
        self.reserve_jobs, self.make_kwargs = reserve_jobs, make_kwargs
        self.ctx = multiprocessing.get_context("fork")
        self.todo = collections.deque(range(len(keys)))
        self.workers: list[_Worker] = []
        self.success, self.errors = 0, []
        self.replacements = len(keys)  # a replacement is started only for a worker that died holding a key
        self.last_failure = "every worker process ended"

    def start_worker(self) -> None:
        parent_end, child_end = self.ctx.Pipe()
        process = self.ctx.Process(target=_work, args=(type(self.table), self.keys, self.reserve_jobs,
                                                       self.make_kwargs, child_end), daemon=True)
        process.start()
        child_end.close()
        self.workers.append(_Worker(process, parent_end))

    def run(self, bar) -> None:
        for _ in range(self.size):
            self.start_worker()
        while self.workers:
            by_wait = {w.conn: w for w in self.workers}
            by_wait.update({w.process.sentinel: w for w in self.workers})
            for ready in wait(list(by_wait), timeout=5.0):
                worker = by_wait[ready]
                if worker not in self.workers:
                    continue  # both its pipe and its sentinel were ready
                self.serve(worker, bar)

    def serve(self, worker: _Worker, bar) -> None:
        """Read what the worker reported; give it the next key, or retire it."""
        while True:
            try:
                if not worker.conn.poll():
                    if worker.process.is_alive():
                        return
                    raise EOFError
                message = worker.conn.recv()
            except Exception:  # noqa: BLE001 - closed, or cut off mid-message by its death
                self.retire(worker, bar)
                return
            if message[0] == "done":
                _, index, success, errors = message
                self.success += success
                self.errors += [(self.keys[index], WorkerError(text)) for text in errors]
                worker.key_index = None
                if bar is not None:
                    bar.update(1)
            elif message[0] == "failed":  # the worker could not go on (its text says why)
                self.last_failure = message[1]
                self.record_death(worker, message[1], bar)
            if message[0] in ("ready", "done"):
                index = self.todo.popleft() if self.todo else None
                try:
                    worker.conn.send(index)
                except OSError:  # it died just now: the key goes back to the others
                    if index is not None:
                        self.todo.appendleft(index)
                    worker.lost_key = True  # it was working: a replacement takes over
                    self.retire(worker, bar)
                    return
                worker.key_index, worker.started = index, time.perf_counter()

    def record_death(self, worker: _Worker, why: str, bar) -> None:
        index, worker.key_index = worker.key_index, None
        if index is None:
            return
        worker.lost_key = True
        key = self.keys[index]
        exc = WorkerDiedError(f"populate of {self.table.full_table_name}: worker process {worker.process.pid} "
                              f"died while computing {key}: {why}")
        log.error("%s", exc)
        self.errors.append((key, exc))
        if self.reserve_jobs:
            self.table.jobs.record_failure(key, exc, time.perf_counter() - worker.started)
        if bar is not None:
            bar.update(1)

    def retire(self, worker: _Worker, bar) -> None:
        """The worker's pipe is closed: it finished, or it died."""
        worker.process.join(timeout=30)
        code = worker.process.exitcode
        if worker.key_index is not None:
            why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self.last_failure = f"worker died ({why})"
            self.record_death(worker, self.last_failure, bar)
        worker.conn.close()
        self.workers.remove(worker)
        if worker.lost_key and self.todo and self.replacements > 0:
            self.replacements -= 1
            self.start_worker()
        elif not self.workers and self.todo:  # every worker is gone without a key in hand
            for index in self.todo:
                self.errors.append((self.keys[index], WorkerDiedError(
                    f"populate of {self.table.full_table_name}: no worker process left to compute "
                    f"{self.keys[index]} ({self.last_failure})")))
            self.todo.clear()

    def stop(self) -> None:
        """Ends workers still running (only after an interruption of the parent)."""
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()
            worker.process.join(timeout=10)
            worker.conn.close()
        self.workers.clear()


def _work(cls, keys, reserve_jobs, make_kwargs, conn) -> None:
    """A worker: asks for a key index, computes it, reports, until told to stop."""
    try:
        table = cls()
        table._connection.after_fork()  # never share sockets across fork
        jobs = table.jobs if reserve_jobs else None
        version = table.code_version
        conn.send(("ready",))
        while (index := conn.recv()) is not None:
            result = table._populate_keys([keys[index]], jobs, True, make_kwargs, False, version)
            conn.send(("done", index, result["success_count"],
                       [f"{type(e).__name__}: {e}" for _, e in result["error_list"]]))
    except (EOFError, BrokenPipeError):  # the parent is gone
        pass
    except BaseException as exc:  # report, never leave the parent guessing
        try:
            conn.send(("failed", f"worker failed: {type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        conn.close()
