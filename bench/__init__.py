"""Benchmarks of dj_dagster against datajoint 2.3.5 and raw drivers: ``python -m bench``
(``make bench``). Speed is measured only here, as ratios against a peer timed in the same run."""
