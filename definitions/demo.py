"""``make demo``: the fractal pipeline end to end through Dagster on the embedded
default (SQLite + local folder), then a summary and a picture of the results."""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

import dagster as dg
import numpy as np


def write_png(path: Path, image: np.ndarray) -> None:
    """A grayscale PNG from an array scaled to [0, 1] (no imaging library needed)."""
    pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                     + chunk(b"IEND", b""))


def main() -> int:
    from definitions import fractal
    from definitions.runner import run_until_settled

    import dj_dagster as dj

    print(f"database: {fractal.schema.connection!r}")
    fractal.JuliaSpec.insert(fractal.SPECS, skip_duplicates=True)
    with dg.DagsterInstance.ephemeral() as instance:
        runs = run_until_settled(fractal.defs, instance)
        failed = [r for r in runs if not r.success]
        print(f"dagster runs: {len(runs)} ({len(failed)} failed)")
        part = instance.get_dynamic_partitions("fractal__julia_spec")
        done = instance.get_materialized_partitions(dg.AssetKey(["fractal", "denoised"]))
        print(f"partitions: {len(part)}, materialized for fractal/denoised: {len(done)}")
    for table in (fractal.JuliaSpec, fractal.JuliaImage, fractal.DenoiseMethod, fractal.Denoised):
        print(f"{table.__name__:>14}: {len(table())} rows")
    summary = dj.U("method", "param").aggr(fractal.Denoised * fractal.DenoiseMethod, mean_mse="avg(mse)",
                                             n="count(*)")
    print("\nmean squared error by filter:")
    for row in summary.to_dicts(order_by="mean_mse"):
        print(f"  {row['method']:>8} {row['param']:>4}: {row['mean_mse']:.5f} over {row['n']} images")
    out = Path(os.environ.get("DJ_DEMO_OUTPUT", "demo-output"))
    out.mkdir(exist_ok=True)
    noisy = (fractal.JuliaImage & {"spec_id": 1}).fetch1("noisy")
    best = (fractal.Denoised & {"spec_id": 1}).to_dicts(order_by="mse", limit=1)[0]
    write_png(out / "fractal.png", np.hstack([noisy, best["image"]]))
    print(f"\npicture: {out / 'fractal.png'} (noisy | best filter, method {best['method_id']})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
