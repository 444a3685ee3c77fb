"""Blob codec speed: dj_dagster.blob against datajoint.blob (2.3.5), both with default settings.

``cases()`` returns ``(name, ours, peer)`` triples of zero-argument callables.  ``main()`` times each
callable 3 times with ``time.perf_counter`` and prints min, median and the peer/ours ratio (of the
minimums; above 1 means ours is faster).  ``BENCH_SCALE`` (default 1) scales the 100 MiB array and
the 10,000 dicts down, e.g. ``BENCH_SCALE=0.1`` for 10 MiB and 1,000 dicts.

Run: ``python bench/bench_blob.py`` standalone, or as part of ``python -m bench`` (cases named
``blob ...``, built by ``harness_cases()``, whose data is made only when a blob case is selected).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from dj_dagster import blob as ours

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # datajoint warns about a missing datajoint.json on import
    from datajoint import blob as peer

MIB = 1024 * 1024
N_DICTS = 10_000
REPEATS = 3


def _small_dicts(n: int) -> list[dict]:
    return [
        {"id": i, "name": f"session-{i}", "rate": i / 7.0, "tags": ["a", "b", i % 5], "ok": bool(i % 2), "note": None}
        for i in range(n)
    ]


def _n_dicts() -> int:
    return max(1000, int(N_DICTS * float(os.environ.get("BENCH_SCALE", "1"))))


def cases() -> list[tuple[str, object, object]]:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    n_dicts = _n_dicts()
    n_bytes = max(8, int(100 * MIB * scale)) // 8 * 8
    label = f"{n_bytes / MIB:g} MiB float64"
    array = np.random.default_rng(0).standard_normal(n_bytes // 8)
    ours_blob = ours.pack(array)
    peer_blob = peer.pack(array)  # slow (zlib level 6 over incompressible data): done once here
    dicts = _small_dicts(n_dicts)
    ours_dict_blobs = [ours.pack(d) for d in dicts]
    peer_dict_blobs = [peer.pack(d) for d in dicts]
    return [
        (f"pack {label}", lambda: ours.pack(array), lambda: peer.pack(array)),
        (f"unpack {label}", lambda: ours.unpack(ours_blob), lambda: peer.unpack(peer_blob)),
        (f"pack {n_dicts:,} small dicts", lambda: [ours.pack(d) for d in dicts], lambda: [peer.pack(d) for d in dicts]),
        (
            f"unpack {n_dicts:,} small dicts",
            lambda: [ours.unpack(b) for b in ours_dict_blobs],
            lambda: [peer.unpack(b) for b in peer_dict_blobs],
        ),
    ]


def harness_cases() -> list:
    """The same cases as :func:`cases`, as ``bench.harness.Case`` objects that build their data lazily."""
    try:
        from .harness import Case
    except ImportError:  # run as a script
        from harness import Case

    scale = float(os.environ.get("BENCH_SCALE", "1"))
    n_bytes = max(8, int(100 * MIB * scale)) // 8 * 8
    label = f"{n_bytes / MIB:g} MiB float64"
    data: dict = {}

    def prepare():
        built = cases()
        data.update({name: (o, p) for name, o, p in built})

    def side(name: str, i: int):
        return lambda: data[name][i]()

    specs = [(f"pack {label}", (n_bytes / MIB, "MiB")), (f"unpack {label}", (n_bytes / MIB, "MiB")),
             (f"pack {_n_dicts():,} small dicts", (_n_dicts(), "dicts")),
             (f"unpack {_n_dicts():,} small dicts", (_n_dicts(), "dicts"))]
    return [Case(f"blob {name}", side(name, 0), side(name, 1), prepare=prepare, units=units, repeats=REPEATS)
            for name, units in specs]


def main() -> None:
    try:
        from .harness import print_triples
    except ImportError:  # run as a script: bench/ is on sys.path
        from harness import print_triples
    print_triples(cases(), REPEATS)


if __name__ == "__main__":
    main()
