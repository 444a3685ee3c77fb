"""Conformance: datajoint 2.3.5's own test suite, run against datajoint and against us.

``python -m conformance`` (or ``make conformance``) downloads the datajoint source release
into a cache folder outside this repository, runs its ``tests/`` once with datajoint itself
(the reference, cached per version) and once with ``import datajoint`` answered by
dj_dagster (:mod:`conformance.shim`), and writes ``conformance/results.md`` and
``conformance/results.json``. See ``conformance/README.md``.
"""
