"""A small timing harness: each case is timed against a peer in the same process and run.

A :class:`Case` pairs ``ours`` (dj_dagster) with ``peer`` (datajoint 2.3.5, the raw driver or
pandas, named by ``peer_name``).  Each callable runs ``repeats`` times; before every timed
call ``setup`` runs and after it ``teardown`` runs, both untimed.  ``ratio`` is
``min(peer) / min(ours)``: above 1 means ours is faster.  Speed is only ever reported as
such ratios, never asserted in unit tests.

Hooks (``setup``, ``teardown``) take either no argument or one, the side being timed
(``"ours"`` or ``"peer"``).  ``prepare`` runs once, untimed, before the case is first timed;
cases that share a ``prepare`` callable run it once (so a group of cases can share
expensive table loading, and ``-k`` never pays for unselected groups).  Cases that share
the same ``ours`` and ``setup`` callables share one timing of ours.  Ours and peer calls
alternate (ours, peer, ours, peer, ...) so that load from other processes hits both alike.

``target`` is the smallest acceptable ratio (e.g. ``5`` for "at least 5x datajoint",
``1 / 1.5`` for "within 1.5x of the raw driver"); ``target_text`` says it in words.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import inspect
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass
class Case:
    name: str
    ours: Callable[[], Any]
    peer: Callable[[], Any]
    setup: Callable | None = None
    teardown: Callable | None = None
    repeats: int = 3
    units: int | float | tuple[float, str] | None = None  # work per call: count, or (count, unit label)
    peer_name: str = "datajoint"
    target: float | None = None  # minimum acceptable peer/ours ratio
    target_text: str = ""
    prepare: Callable[[], Any] | None = None
    peer_repeats: int | None = None  # defaults to repeats (lets very slow peers run fewer times)
    check: Callable[[Any, Any], None] | None = None  # (ours result, peer result) of the first call

    def unit_count(self) -> tuple[float, str] | None:
        if self.units is None:
            return None
        if isinstance(self.units, tuple):
            return float(self.units[0]), self.units[1]
        return float(self.units), "rows"


@dataclasses.dataclass
class Result:
    case: Case
    ours: list[float]
    peer: list[float]
    error: str | None = None
    ours_cpu: list[float] = dataclasses.field(default_factory=list)  # this process's CPU seconds per call
    peer_cpu: list[float] = dataclasses.field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not self.ours or not self.peer:
            return None
        return min(self.peer) / max(min(self.ours), 1e-9)

    @property
    def met(self) -> bool | None:
        if self.case.target is None or self.ratio is None:
            return None
        return self.ratio >= self.case.target


def _call_hook(fn: Callable | None, side: str) -> None:
    if fn is None:
        return
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        params = []
    fn(side) if params else fn()


def _timed(fn: Callable[[], Any], setup, teardown, side: str) -> tuple[float, float, Any]:
    """Wall seconds, this process's CPU seconds, and the result of one call."""
    _call_hook(setup, side)
    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    _call_hook(teardown, side)
    return elapsed, cpu, result


def time_calls(fn: Callable[[], Any], repeats: int, setup=None, teardown=None,
               side: str = "ours") -> tuple[list[float], Any]:
    """Seconds of each of ``repeats`` calls, and the first call's result."""
    times, first = [], None
    for i in range(repeats):
        elapsed, _, result = _timed(fn, setup, teardown, side)
        times.append(elapsed)
        if i == 0:
            first = result
        del result
    return times, first


@dataclasses.dataclass
class Timings:
    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)
    first: Any = None


def time_interleaved(ours: Callable[[], Any] | None, peer: Callable[[], Any], ours_repeats: int,
                     peer_repeats: int, setup=None, teardown=None) -> tuple[Timings, Timings]:
    """Alternate ours and peer (ours, peer, ours, peer, ...) so that load from other processes on
    the machine hits both sides alike; ``ours=None`` times the peer alone."""
    t_ours, t_peer = Timings(), Timings()
    for i in range(max(ours_repeats if ours is not None else 0, peer_repeats)):
        for fn, n, side, acc in ((ours, ours_repeats, "ours", t_ours), (peer, peer_repeats, "peer", t_peer)):
            if fn is None or i >= n:
                continue
            elapsed, cpu, result = _timed(fn, setup, teardown, side)
            acc.wall.append(elapsed)
            acc.cpu.append(cpu)
            if i == 0:
                acc.first = result
            del result
    return t_ours, t_peer


class Runner:
    def __init__(self, verbose: bool = True):
        self.verbose = verbose
        self._prepared: dict[int, Any] = {}  # id(prepare) -> prepare (kept alive so ids stay unique)
        self._ours_cache: dict[tuple[int, int], tuple[Timings, tuple]] = {}

    def run(self, case: Case) -> Result:
        try:
            if case.prepare is not None and id(case.prepare) not in self._prepared:
                self._log(f"  preparing {case.name} ...")
                case.prepare()
                self._prepared[id(case.prepare)] = case.prepare
            key = (id(case.ours), id(case.setup))
            cached = self._ours_cache.get(key)
            t_ours, t_peer = time_interleaved(
                None if cached else case.ours, case.peer, case.repeats, case.peer_repeats or case.repeats,
                case.setup, case.teardown)
            if cached:
                t_ours = cached[0]
            else:
                self._ours_cache[key] = (t_ours, (case.ours, case.setup))
            if case.check is not None:
                case.check(t_ours.first, t_peer.first)
            t_peer.first = None
            result = Result(case, t_ours.wall, t_peer.wall, ours_cpu=t_ours.cpu, peer_cpu=t_peer.cpu)
        except Exception as exc:  # a broken case is reported, the run goes on
            traceback.print_exc()
            result = Result(case, [], [], error=f"{type(exc).__name__}: {exc}"[:200])
        self._log("  " + _row(result))
        return result

    def _log(self, text: str) -> None:
        if self.verbose:
            print(text, file=sys.stderr, flush=True)


def _fmt_s(values: list[float], fn) -> str:
    if not values:
        return "-"
    v = fn(values)
    return f"{v * 1e3:.2f} ms" if v < 1 else f"{v:.3f} s"


def _throughput(case: Case, seconds: list[float]) -> str:
    uc = case.unit_count()
    if uc is None or not seconds:
        return ""
    count, label = uc
    rate = count / max(min(seconds), 1e-12)
    if label.endswith("B"):  # byte units (MiB, GiB): no k/M prefixes
        return f"{rate:,.0f} {label}/s"
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M{label}/s"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f} k{label}/s"
    return f"{rate:.1f} {label}/s"


HEADER = ["case", "peer", "ours min", "ours median", "peer min", "peer median", "ratio peer/ours",
          "ours throughput", "target", "met", "client CPU ours / peer"]


def _cells(r: Result) -> list[str]:
    c = r.case
    if r.error:
        return [c.name, c.peer_name, "ERROR", r.error.replace("|", "/"), "", "", "", "", c.target_text, "", ""]
    ratio = r.ratio
    met = "" if r.met is None else ("yes" if r.met else "**no**")
    return [c.name, c.peer_name, _fmt_s(r.ours, min), _fmt_s(r.ours, statistics.median), _fmt_s(r.peer, min),
            _fmt_s(r.peer, statistics.median), f"{ratio:.2f}x" if ratio is not None else "-",
            _throughput(c, r.ours), c.target_text, met,
            f"{_fmt_s(r.ours_cpu, min)} / {_fmt_s(r.peer_cpu, min)}" if r.ours_cpu and r.peer_cpu else ""]


def _row(r: Result) -> str:
    return " | ".join(_cells(r))


def markdown(results: Iterable[Result], title: str = "Benchmark results", notes: Iterable[str] = ()) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- {n}" for n in notes]
    lines += ["", "| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] * len(HEADER)) + "|"]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in results]
    lines += ["", "ratio = peer min / ours min (wall clock; above 1: dj_dagster is faster). "
              "Targets are minimum ratios; 'within 1.5x of X' means ratio >= 0.67. "
              "Client CPU is this process's CPU time (min over calls), excluding the database server's work.", ""]
    return "\n".join(lines)


def environment_notes(extra: Iterable[str] = ()) -> list[str]:
    return [
        f"date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores",
        f"BENCH_SCALE={os.environ.get('BENCH_SCALE', '1')}",
        "load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        *extra,
    ]


def write_results(text: str, name: str = "latest.md") -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(text)
    return path


def run_cases(cases: Iterable[Case], verbose: bool = True) -> list[Result]:
    runner = Runner(verbose)
    return [runner.run(c) for c in cases]


def print_triples(triples, repeats: int = 3, width: int = 42) -> None:
    """Time ``(name, ours, peer)`` triples and print min, median and the ratio: the
    stand-alone view of one bench file (``python bench/bench_blob.py``)."""
    def times(fn) -> list[float]:
        out = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
        return out

    header = f"{'case':{width}} {'ours min':>10} {'ours med':>10} {'peer min':>10} {'peer med':>10} {'ratio':>8}"
    print(header)
    print("-" * len(header))
    for name, ours_fn, peer_fn in triples:
        t_ours, t_peer = times(ours_fn), times(peer_fn)
        ratio = min(t_peer) / max(min(t_ours), 1e-9)
        print(f"{name:{width}} {min(t_ours):10.4f} {statistics.median(t_ours):10.4f} "
              f"{min(t_peer):10.4f} {statistics.median(t_peer):10.4f} {ratio:7.1f}x")
