"""``python -m bench [--quick] [-k SUBSTRING ...] [--list] [--profile]``: run the benchmark cases.

``--quick`` sets ``BENCH_SCALE=0.1`` (unless already set), shrinking every size tenfold.
``-k`` keeps the cases whose ``name [peer]`` contains any given substring (case-insensitive).
The Markdown table goes to stdout and to ``bench/results/latest.md``; progress goes to stderr.
``--profile`` instead runs dj_dagster's side of each selected case once (after its setup) under
pyinstrument (or cProfile when pyinstrument is not installed) and prints where the time goes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="BENCH_SCALE=0.1 (sizes / 10)")
    parser.add_argument("-k", action="append", default=[], metavar="SUBSTRING",
                        help="only cases whose 'name [peer]' contains this (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("--output", default="latest.md", help="file name under bench/results/")
    parser.add_argument("--profile", action="store_true", help="profile ours of the selected cases")
    parser.add_argument("--profiler", choices=["pyinstrument", "cprofile"], default="pyinstrument",
                        help="with --profile: the profiler (cProfile gives exact call counts)")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ.setdefault("BENCH_SCALE", "0.1")

    from .bench_pg import PgSuite, configure_peer_env

    configure_peer_env()  # before anything imports datajoint
    from .bench_dagster import DagsterSuite
    from .bench_external import ExternalSuite

    suite = PgSuite()
    dagster_suite = DagsterSuite()  # declares its schemas now: close it on every path
    external_suite = ExternalSuite()
    try:
        return _run(args, suite, dagster_suite, external_suite)
    finally:
        for s in (suite, dagster_suite, external_suite):
            try:
                s.close()
            except Exception as exc:  # noqa: BLE001 - close the others anyway
                print(f"{type(s).__name__}.close(): {exc}", file=sys.stderr)


def _run(args, suite, dagster_suite, external_suite) -> int:
    from . import bench_blob
    from .bench_pg import describe_versions
    from .harness import environment_notes, markdown, run_cases, write_results

    cases = suite.cases() + bench_blob.harness_cases() + dagster_suite.cases() + external_suite.cases()
    if args.k:
        wanted = [k.lower() for k in args.k]
        cases = [c for c in cases if any(w in f"{c.name} [{c.peer_name}]".lower() for w in wanted)]
    if args.list:
        for c in cases:
            print(f"{c.name} [{c.peer_name}]")
        return 0
    if not cases:
        print("no case selected", file=sys.stderr)
        return 2
    if args.profile:
        profile_cases(cases, args.profiler)
        return 0
    start = time.perf_counter()
    results = run_cases(cases)
    elapsed = time.perf_counter() - start
    notes = environment_notes([", ".join(describe_versions()), f"sizes: {suite.sizes}",
                               *external_suite.notes(), f"wall time: {elapsed:.0f} s"])
    text = markdown(results, notes=notes)
    print(text)
    path = write_results(text, args.output)
    print(f"written to {path}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


def profile_cases(cases, profiler: str = "pyinstrument") -> None:
    from .harness import _call_hook

    seen = set()
    for case in cases:
        if id(case.ours) in seen:
            continue
        seen.add(id(case.ours))
        if case.prepare is not None:
            case.prepare()
        _call_hook(case.setup, "ours")
        case.ours()  # warm caches, as the timed runs do
        _call_hook(case.teardown, "ours")
        _call_hook(case.setup, "ours")
        print(f"\n===== {case.name} =====")
        try:
            if profiler != "pyinstrument":
                raise ImportError(profiler)
            from pyinstrument import Profiler
        except ImportError:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(case.ours)
            stats = pstats.Stats(prof)
            stats.sort_stats("cumulative").print_stats(30)
            stats.sort_stats("tottime").print_stats(15)
        else:
            profiler = Profiler(interval=0.0005)
            profiler.start()
            case.ours()
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        _call_hook(case.teardown, "ours")


if __name__ == "__main__":
    sys.exit(main())
