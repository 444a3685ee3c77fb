"""populate(): compute every missing key of the key source, each in its own
transaction, optionally sharing the work with other workers through the jobs table."""

from __future__ import annotations

import datetime
import functools
import hashlib
import inspect
import logging
import time
from typing import Any

import numpy as np
import sqlalchemy as sa

from .condition import AndList
from .errors import DataJointError, DuplicateError, IntegrityError, WorkerError
from . import provenance
from .table import _inside_make, _make_stamp

log = logging.getLogger(__name__)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and bool(
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


class AutoPopulate:
    """Mixin for Imported and Computed tables."""

    _key_source = None

    # --- what to compute --------------------------------------------------------
    @property
    def key_source(self):
        """Join of the primary-key projections of the primary foreign-key parents."""
        from .schema import table_object

        parents = self._connection.dependencies.parents(self.full_table_name, primary=True)
        if not parents:
            raise DataJointError(f"{self.full_table_name} has no primary foreign keys to form a key source")
        exprs = []
        for name, data in parents:
            parent = table_object(self._connection, name)
            renames = {c: p for c, p in data["attr_map"].items() if c != p}
            exprs.append(parent.proj(**renames))
        return functools.reduce(lambda a, b: a * b, exprs)

    def _todo(self, restrictions: tuple = ()):
        source = self.key_source
        if restrictions:
            source = source & AndList(restrictions)
        return source - self.proj()

    @property
    def code_version(self) -> str:
        """A hash of the make source: recorded with each job, shown as Dagster's code version."""
        parts = []
        for name in ("make", "make_fetch", "make_compute", "make_insert"):
            fn = getattr(type(self), name, None)
            if fn is not None and fn is not getattr(AutoPopulate, name, None):
                try:
                    parts.append(inspect.getsource(fn))
                except (OSError, TypeError):
                    parts.append(getattr(fn, "__qualname__", name))
        return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]

    def progress(self, *restrictions, display: bool = False) -> tuple[int, int]:
        source = self.key_source
        if restrictions:
            source = source & AndList(restrictions)
        total = len(source)
        remaining = len(source - self.proj())
        if display:
            print(f"{self.full_table_name}: completed {total - remaining} of {total}, {remaining} remaining")
        return remaining, total

    @property
    def jobs(self):
        """The job queue of this table (``~~name``), a table of its own (see Jobs)."""
        from .jobs import jobs_class

        return jobs_class(type(self))()

    _upstream = None  # the trace of the running make's key, built on first use
    _upstream_key = None  # the running make's key; None outside make()

    @property
    def upstream(self):
        """Inside ``make(key)``: a Diagram of this table's ancestors, each restricted to
        the rows ``key`` comes from (``Diagram.trace(self & key)``); ``self.upstream[T]``
        is ancestor ``T`` (a class, table or full name) so restricted. Built on first
        use and kept for the make (its three parts share it). Outside make() it raises
        DataJointError."""
        key = self._upstream_key
        if key is None:
            raise DataJointError(f"{self.full_table_name}: self.upstream is only available inside make(); "
                                 "elsewhere trace explicitly: dj.Diagram.trace(table & key)")
        if self._upstream is None:
            from .diagram import Diagram

            self._upstream = Diagram.trace(self & key)
        return self._upstream

    # --- computing ----------------------------------------------------------------
    def make(self, key: dict) -> None:
        legacy = getattr(self, "_make_tuples", None)  # the pre-1.0 name of make, still honoured
        if callable(legacy):
            return legacy(key)
        raise NotImplementedError(f"{type(self).__name__} must define make(key) or make_fetch/make_compute/"
                                  "make_insert")

    @property
    def _three_part(self) -> bool:
        cls = type(self)
        return all(callable(getattr(cls, n, None)) for n in ("make_fetch", "make_compute", "make_insert")) and \
            cls.make is AutoPopulate.make

    def populate(self, *restrictions, suppress_errors: bool = False, return_exception_objects: bool = False,
                 reserve_jobs: bool = False, max_calls: int | None = None, display_progress: bool = False,
                 processes: int = 1, make_kwargs: dict | None = None, priority: int | None = None,
                 order: str = "original", refresh: bool | None = None) -> dict:
        """Compute missing keys of ``key_source & restrictions``; returns
        ``{'success_count': n, 'error_list': [(key, error)]}``, each error (with
        ``suppress_errors``) as datajoint words it (``"ValueError: message"``), or the
        exception itself with ``return_exception_objects=True``.

        With ``reserve_jobs=True`` the work is shared with other workers through the
        jobs table: it is refreshed first (``refresh``, default
        ``config.jobs.auto_refresh``; new jobs at ``priority``), then only pending jobs
        are computed, of ``priority`` or more urgent when given; a failed make is
        recorded as an error job, and SIGTERM stops the populate as SystemExit."""
        from .settings import config

        if self._connection.in_transaction:
            raise DataJointError("populate() cannot run inside a transaction")
        if reserve_jobs:
            with _SigtermAsExit():
                result = self._populate(restrictions, suppress_errors, True, max_calls, display_progress,
                                        processes, make_kwargs, priority, order,
                                        config.jobs.auto_refresh if refresh is None else refresh)
        else:
            result = self._populate(restrictions, suppress_errors, False, max_calls, display_progress, processes,
                                    make_kwargs, priority, order, False)
        if not return_exception_objects and result["error_list"]:
            result["error_list"] = [(key, error_message(exc)) for key, exc in result["error_list"]]
        return result

    def _populate(self, restrictions, suppress_errors, reserve_jobs, max_calls, display_progress, processes,
                  make_kwargs, priority, order, refresh) -> dict:
        jobs = self.jobs if reserve_jobs else None
        version = self.code_version
        if jobs is not None:
            if refresh:
                jobs.refresh(*restrictions, priority=priority, version=version)
            keys = jobs.pending_keys(priority=priority)
            if restrictions:
                allowed = {tuple(sorted(k.items())) for k in self._todo(restrictions).keys()}
                keys = [k for k in keys if tuple(sorted(k.items())) in allowed]
        else:
            keys = self._todo(restrictions).keys()
        if order == "reverse":
            keys.reverse()
        elif order == "random":
            import random

            random.shuffle(keys)
        if max_calls is not None:
            keys = keys[:max_calls]
        if processes and processes > 1 and len(keys) > 1:
            return self._populate_parallel(keys, processes, suppress_errors, reserve_jobs, make_kwargs,
                                           display_progress)
        return self._populate_keys(keys, jobs, suppress_errors, make_kwargs, display_progress, version)

    def _run_facts(self, jobs, make_kwargs, version) -> "_Run":
        cls = type(self)
        kind = "generator" if inspect.isgeneratorfunction(cls.make) else "three" if self._three_part else "plain"
        name = self.full_table_name
        tables = frozenset([name, *self._part_names()])
        return _Run(name, version, jobs, make_kwargs or {}, kind, tables, "_job_version" in self.heading.attributes)

    def _populate_keys(self, keys, jobs, suppress_errors, make_kwargs, display_progress, version) -> dict:
        success, errors = 0, []
        run = self._run_facts(jobs, make_kwargs, version)
        claim = jobs is not None and run.kind == "plain"  # a plain make claims its job inside its transaction
        made_elsewhere = _MadeElsewhere(self, keys) if jobs is None else None
        retrying = self._connection.retrying
        bar = None
        if display_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(keys), desc=type(self).__name__)
        with self._connection.pinned():
            try:
                for i, key in enumerate(keys):
                    skip = made_elsewhere.made(i) if made_elsewhere is not None else (
                        not claim and not jobs.reserve(key, version))
                    if skip:
                        if bar is not None:
                            bar.update(1)
                        continue
                    start = time.perf_counter()
                    try:
                        done = retrying(lambda: self._make_one(key, run, start))
                    except (KeyboardInterrupt, SystemExit) as exc:
                        if jobs is not None:  # recorded as datajoint does; never suppressed
                            jobs.record_failure(key, exc, time.perf_counter() - start, claimed=claim)
                        raise
                    except Exception as exc:
                        if jobs is not None:
                            jobs.record_failure(key, exc, time.perf_counter() - start, claimed=claim)
                        if not suppress_errors:
                            raise
                        errors.append((key, exc))
                        log.warning("%s: make(%s) failed: %s", self.full_table_name, key, exc)
                    else:
                        success += int(done)
                    if bar is not None:
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
        return {"success_count": success, "error_list": errors}

    def _make_one(self, key: dict, run: "_Run", start: float) -> bool:
        """One key in one transaction; the job's success commits with the rows."""
        version, jobs, make_kwargs = run.version, run.jobs, run.kwargs
        stamp = _Stamp(run.name, version) if run.stamped else None
        claimed = None

        def finish():
            if stamp is not None and not stamp.used:  # rows came another way than insert()
                self._record_provenance(key, stamp)
            if jobs is not None:
                jobs.complete(key, time.perf_counter() - start, version, claimed)

        conn = self._connection
        token = _inside_make.set(_inside_make.get() | run.tables)
        stamp_token = _make_stamp.set(stamp)
        prov_token = provenance.set_ingesting(run.name, key, version)  # recorded by rows entered meanwhile
        self._upstream_key, self._upstream = key, None
        try:
            if run.kind == "generator":
                return self._make_generator(key, make_kwargs, finish, jobs, version)
            if run.kind == "three":  # make_kwargs go to make_fetch, as in datajoint
                fetched = self.make_fetch(key, **make_kwargs)
                computed = self.make_compute(key, *_as_tuple(fetched))
                return self._insert_if_unchanged(key, fetched, lambda: self.make_fetch(key, **make_kwargs),
                                                 lambda: self.make_insert(key, *_as_tuple(computed)),
                                                 finish, jobs, version, during="make_compute")
            try:
                with conn.transaction() as tx:
                    if jobs is not None:
                        claimed = jobs.claim(tx, key)
                        if claimed is None:  # a rival holds it, or it is done
                            return False
                    if stamp is not None:
                        stamp.restart()
                    self.make(dict(key), **make_kwargs)
                    finish()
            except DuplicateError:
                if jobs is None and self._has_key(key):  # made by another process since _MadeElsewhere looked
                    return False
                raise
            return True
        finally:
            self._upstream_key = self._upstream = None
            provenance.reset_ingesting(prov_token)
            _make_stamp.reset(stamp_token)
            _inside_make.reset(token)

    def _make_generator(self, key: dict, make_kwargs: dict, finish, jobs, version: str) -> bool:
        """Generator-style make: ``fetched = yield``-protocol as in datajoint 2.x. The
        first pass fetches and computes outside a transaction; the second fetches again
        inside it, checks nothing changed, and receives the result to insert."""
        gen = self.make(dict(key), **make_kwargs)
        fetched = next(gen)
        computed = next(gen)
        gen.close()
        again = None

        def refetch():
            nonlocal again
            again = self.make(dict(key), **make_kwargs)
            return next(again)

        def insert():
            try:
                again.send(computed)
            except StopIteration:
                pass

        return self._insert_if_unchanged(key, fetched, refetch, insert, finish, jobs, version,
                                         during="the computation")

    def _insert_if_unchanged(self, key: dict, fetched, refetch, insert, finish, jobs, version: str,
                             during: str) -> bool:
        """The second half of a make computed outside a transaction: inside one, skip a key
        made meanwhile, fetch again, and insert only if the inputs did not change."""
        with self._connection.transaction():
            if self._has_key(key):
                if jobs is not None:
                    jobs.complete(key, 0.0, version)
                return False
            if not _same(_as_tuple(fetched), _as_tuple(refetch())):
                raise IntegrityError(f"{self.full_table_name}: upstream data for {key} changed during "
                                     f"{during}; the key will be retried")
            insert()
            finish()
        return True

    def _record_provenance(self, key: dict, stamp: "_Stamp") -> None:
        """Stamp rows that reached the table without insert() (e.g. INSERT ... SELECT)."""
        names = tuple(k for k in key if k in self.heading.attributes)
        stmt = self._statement("provenance", names, lambda t: sa.update(t).where(
            *[t.c[k] == sa.bindparam(f"k_{k}") for k in names]).values(
            _job_start_time=sa.bindparam("p_start"), _job_duration=sa.bindparam("p_duration"),
            _job_version=sa.bindparam("p_version")))
        values = stamp.values()
        self._connection.execute(stmt, {**{f"k_{k}": key[k] for k in names}, "p_start": values["_job_start_time"],
                                        "p_duration": values["_job_duration"], "p_version": stamp.version})

    def _has_key(self, key: dict) -> bool:
        """Whether rows for ``key`` exist (one cached statement per table and key shape)."""
        names = tuple(k for k in key if k in self.heading.attributes)
        stmt = self._statement("has_key", names, lambda t: sa.select(sa.literal(1)).select_from(t).where(
            *[t.c[k] == sa.bindparam(f"k_{k}") for k in names]).limit(1))
        with self._connection.reading() as conn:
            return conn.execute(stmt, {f"k_{k}": key[k] for k in names}).first() is not None

    def _statement(self, purpose: str, names: tuple, build):
        cache = self._connection.__dict__.setdefault("statements", {})
        ident = (self.full_table_name, purpose, names)
        if ident not in cache:
            cache[ident] = build(self.sa_table)
        return cache[ident]

    def outdated(self):
        """Rows made by a different version of the make code (recompute them by deleting)."""
        return self - {"_job_version": self.code_version}

    def _part_names(self) -> list[str]:
        prefix = f"{self.database}.{self.table_name}__"
        return [n for n in self._connection.__dict__.get("classes", {}) if n.startswith(prefix)]

    def _populate_parallel(self, keys, processes, suppress_errors, reserve_jobs, make_kwargs, display) -> dict:
        """Forked workers inherit the table classes (even ones defined in a function), so
        nothing but key indexes and results crosses a process boundary (see workers.py)."""
        from .workers import populate_parallel

        return populate_parallel(self, keys, processes, suppress_errors, reserve_jobs, make_kwargs, display)


class _SigtermAsExit:
    """While a populate with reserve_jobs runs (in the main thread), SIGTERM raises
    SystemExit, so that the interrupted job is recorded as an error."""

    def __enter__(self):
        import signal
        import threading

        self.previous = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise SystemExit("SIGTERM received")

            self.previous = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


class _Run:
    """What every key of one populate shares, worked out once: the make's kind (plain,
    three-part or generator), the tables its inserts may write, whether rows are stamped."""

    __slots__ = ("name", "version", "jobs", "kwargs", "kind", "tables", "stamped")

    def __init__(self, name: str, version: str, jobs, kwargs: dict, kind: str, tables: frozenset, stamped: bool):
        self.name, self.version, self.jobs, self.kwargs = name, version, jobs, kwargs
        self.kind, self.tables, self.stamped = kind, tables, stamped


class _MadeElsewhere:
    """Keys of a populate's list that another process has made since the list was read.
    Checked in batches, rather than with a query per key: at most once a second, and
    less often when the check itself is slow (so that it costs at most a few percent of
    the populate). A key made inside that window ends in a duplicate insert, rolled back
    and skipped."""

    BATCH = 1000
    PERIOD = 1.0  # seconds
    SHARE = 50  # a check waits at least this many times its own duration

    def __init__(self, table, keys: list[dict]):
        self.table, self.keys = table, keys
        self.names = list(keys[0]) if keys else []
        self.checked_at, self.fresh_until, self.found = time.monotonic(), len(keys), set()
        self.wait = self.PERIOD

    def made(self, i: int) -> bool:
        if i >= self.fresh_until or time.monotonic() - self.checked_at > self.wait:
            start = time.monotonic()
            batch = self.keys[i:i + self.BATCH]
            self.found = {tuple(k[n] for n in self.names) for k in (self.table.proj() & batch).keys()}
            self.checked_at, self.fresh_until = time.monotonic(), i + len(batch)
            self.wait = max(self.PERIOD, self.SHARE * (self.checked_at - start))
        return bool(self.found) and tuple(self.keys[i][n] for n in self.names) in self.found


class _Stamp:
    """Provenance of the rows a make inserts into its own table (start, duration, code
    version): insert() adds it to the rows, so it costs no statement of its own."""

    __slots__ = ("table", "version", "started", "t0", "used")

    def __init__(self, table: str, version: str):
        self.table, self.version, self.used = table, version, False
        self.restart()

    def restart(self) -> None:
        self.started, self.t0 = datetime.datetime.now(), time.perf_counter()

    def values(self) -> dict:
        return {"_job_start_time": self.started, "_job_duration": time.perf_counter() - self.t0,
                "_job_version": self.version}

    def apply(self, rows: list[dict]) -> None:
        values = self.values()
        for row in rows:
            row.update(values)
        self.used = True


def error_message(exc: BaseException) -> str:
    """A failed make's error as datajoint words it: ``Class: message`` (or ``Class``);
    an error relayed from a worker process already is that text."""
    if isinstance(exc, WorkerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)
