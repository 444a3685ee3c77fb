"""Peak memory of fetching a large result to pandas, as a multiple of the DataFrame's own
size (target: below 2x), with ``pandas.read_sql`` on the same query as the reference.

``python -m bench.bench_memory`` (``BENCH_SCALE`` shrinks the 1,000,000 rows). Each fetch
runs in a fresh process, because the peak resident size a process reports never goes
down: the increase of ``ru_maxrss`` over the fetch is its peak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

ROWS = 1_000_000


def _child(kind: str, url: str, schema: str) -> None:
    import gc
    import resource

    import pandas as pd
    import sqlalchemy as sa

    import dj_dagster as dj

    def rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    if kind == "ours":
        table = dj.virtual_schema(schema, connection=dj.Connection(url)).Big
        (table & "id < 10").to_pandas()  # warm: imports, catalog, pool
        fetch = table.to_pandas
    else:
        engine = sa.create_engine(url)
        query = f'SELECT id, a, b, c FROM "{schema}".big'
        pd.read_sql(query + " LIMIT 10", engine)
        fetch = lambda: pd.read_sql(query, engine)  # noqa: E731
    gc.collect()
    before = rss()
    frame = fetch()
    peak = rss() - before
    print(json.dumps({"rows": len(frame), "peak": peak, "size": int(frame.memory_usage(deep=True).sum())}))


def _measure(kind: str, url: str, schema: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.bench_memory", "--child", kind, url, schema],
                         capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    import psycopg

    from .bench_pg import pg_url, scaled

    url = pg_url().render_as_string(hide_password=False)
    n = scaled(ROWS)
    schema = f"djbench_mem_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    raw = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
    try:
        import dj_dagster as dj

        s = dj.Schema(schema, connection=dj.Connection(url))

        @s
        class Big(dj.Manual):
            definition = """
            id : int32
            ---
            a : int32
            b : float64
            c : varchar(32)
            """

        with raw.cursor().copy(f'COPY "{schema}".big (id, a, b, c) FROM STDIN') as copy:
            for i in range(n):
                copy.write_row((i, i % 1000, i * 0.5, f"label {i % 50000}"))
        results = {kind: _measure(kind, url, schema) for kind in ("ours", "read_sql")}
    finally:
        raw.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        raw.close()
    mib = 2**20
    print("| case | DataFrame | peak increase | peak / DataFrame | target | met |")
    print("|---|---|---|---|---|---|")
    for kind, label in (("ours", "to_pandas"), ("read_sql", "pandas.read_sql")):
        r = results[kind]
        ratio = r["peak"] / r["size"]
        target, met = ("< 2x", "yes" if ratio < 2 else "**no**") if kind == "ours" else ("", "")
        print(f"| fetch {r['rows']:,} rows, {label} | {r['size'] / mib:.0f} MiB | {r['peak'] / mib:.0f} MiB "
              f"| {ratio:.2f}x | {target} | {met} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(*sys.argv[2:])
    else:
        sys.exit(main())
