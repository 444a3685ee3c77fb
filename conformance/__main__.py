"""Run datajoint's own test suite against datajoint (reference) and dj_dagster (ours).

Usage::

    python -m conformance                 # reference (cached) + ours, all files
    python -m conformance --target ours   # ours only; the reference comes from the cache
    python -m conformance --target ours -- tests/integration/test_fetch.py -x

Needs MariaDB/MySQL on ``DJ_HOST:DJ_PORT`` (127.0.0.1:3306, root, empty password by
default) and PostgreSQL on ``DJ_PG_HOST:DJ_PG_PORT`` (127.0.0.1:5432, postgres); an S3
server (moto's) is started on a free loopback port for the run. Only connection settings
are given to the suite, through the environment variables its conftest reads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
VERSION = os.environ.get("DJ_CONFORMANCE_VERSION", "2.3.5")
CACHE = Path(os.environ.get("DJ_CONFORMANCE_CACHE", Path.home() / ".cache" / "dj_dagster-conformance"))


def log(msg: str) -> None:
    print(f"[conformance {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def source_tree() -> Path:
    """The extracted datajoint source release (downloaded with pip on first use)."""
    root = CACHE / f"datajoint-{VERSION}"
    if (root / "tests" / "conftest.py").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading the datajoint=={VERSION} source release")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--disable-pip-version-check", "-q", f"datajoint=={VERSION}", "-d", tmp], check=True)
        (archive,) = Path(tmp).glob("datajoint-*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(CACHE, filter="data")
    return root


def clean_servers(env: dict[str, str]) -> None:
    """Drop what an earlier, interrupted run of the suite left (``djtest*`` databases)."""
    import psycopg
    import pymysql

    my = pymysql.connect(host=env["DJ_HOST"], port=int(env["DJ_PORT"]), user=env["DJ_USER"],
                         password=env["DJ_PASS"], autocommit=True)
    with my.cursor() as cur:
        cur.execute("SET FOREIGN_KEY_CHECKS=0")
        cur.execute("SHOW DATABASES LIKE 'djtest%%'")
        for (name,) in cur.fetchall():
            cur.execute(f"DROP DATABASE `{name}`")
        for user in ("datajoint", "djview", "djssl"):
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%%'")
    my.close()
    pg = psycopg.connect(host=env["DJ_PG_HOST"], port=int(env["DJ_PG_PORT"]), user=env["DJ_PG_USER"],
                         password=env["DJ_PG_PASS"] or None, dbname="postgres", autocommit=True)
    for db in ("postgres", "test"):
        try:
            conn = pg if db == "postgres" else psycopg.connect(
                host=env["DJ_PG_HOST"], port=int(env["DJ_PG_PORT"]), user=env["DJ_PG_USER"],
                password=env["DJ_PG_PASS"] or None, dbname=db, autocommit=True)
        except psycopg.Error:
            continue
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'djtest%%'").fetchall()
        for (name,) in rows:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        conn.close()


@contextlib.contextmanager
def server_lock():
    """One run of the suite at a time on this machine: runs share the servers' database
    names and the MySQL users the suite creates and drops."""
    import fcntl

    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "servers.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("waiting for another conformance run to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def suite_env(s3_endpoint: str, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_") or k.startswith("DJ_CONFORMANCE")}
    env.update(
        DJ_USE_EXTERNAL_CONTAINERS="1",
        DJ_HOST=os.environ.get("DJ_HOST", "127.0.0.1"), DJ_PORT=os.environ.get("DJ_PORT", "3306"),
        DJ_USER=os.environ.get("DJ_USER", "root"), DJ_PASS=os.environ.get("DJ_PASS", ""),
        DJ_PG_HOST=os.environ.get("DJ_PG_HOST", "127.0.0.1"), DJ_PG_PORT=os.environ.get("DJ_PG_PORT", "5432"),
        DJ_PG_USER=os.environ.get("DJ_PG_USER", "postgres"), DJ_PG_PASS=os.environ.get("DJ_PG_PASS", ""),
        S3_ENDPOINT=s3_endpoint, S3_ACCESS_KEY="datajoint", S3_SECRET_KEY="datajoint", S3_BUCKET="datajoint.test",
        DJ_HOME=home, PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def run_suite(target: str, tree: Path, out: Path, pytest_args: list[str], timeout: int) -> Path:
    """Run the suite for ``target`` ('reference' or 'ours'); return its JUnit XML."""
    sys.path.insert(0, str(REPO))
    from tests.s3server import s3_server

    xml = out / f"{target}.xml"
    with server_lock(), tempfile.TemporaryDirectory() as home, s3_server() as endpoint:
        env = suite_env(endpoint.split("://", 1)[1], home)
        clean_servers(env)
        cmd = [sys.executable, "-m", "pytest", *(["-p", "conformance.shim"] if target == "ours" else []),
               "-p", "no:cacheprovider", "-o", "addopts=", "--continue-on-collection-errors", "-q", "--no-header", "-rN",
               f"--timeout={timeout}", f"--junitxml={xml}", *(pytest_args or ["tests"])]
        log(f"{target}: {' '.join(cmd[2:])}")
        started = time.monotonic()
        with open(out / f"{target}.log", "w") as logfile:
            subprocess.run(cmd, cwd=tree, env=env, stdout=logfile, stderr=subprocess.STDOUT)
        log(f"{target}: done in {time.monotonic() - started:.0f} s (log: {out / (target + '.log')})")
    return xml


def outcomes(xml: Path) -> dict[str, str]:
    """test id (file::name) -> passed / failed / error / skipped."""
    result = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        module = case.get("classname", "")
        if not module:  # a module that could not be collected: its tests are counted from the reference
            continue
        parts = module.split(".")
        # classname is dotted module[.Class]; find where the module path ends
        path = "/".join(parts)
        for i in range(len(parts), 0, -1):
            if parts[i - 1].startswith("test_") or parts[i - 1] == "conftest":
                path = "/".join(parts[:i]) + ".py" + "".join("::" + p for p in parts[i:])
                break
        kinds = {child.tag for child in case}
        outcome = ("error" if "error" in kinds else "failed" if "failure" in kinds
                   else "skipped" if "skipped" in kinds else "passed")
        result[f"{path}::{case.get('name')}"] = outcome
    return result


def backend_of(test_id: str) -> str:
    return "postgresql" if "postgresql" in test_id else "mysql" if "[mysql" in test_id or "-mysql" in test_id else ""


def write_report(ref: dict[str, str], ours: dict[str, str]) -> None:
    files: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for tid in sorted(set(ref) | set(ours)):
        f = tid.split("::", 1)[0]
        row = files[f]
        row[0] += ref.get(tid) == "passed"
        row[1] += tid in ref
        row[2] += ours.get(tid) == "passed"
        row[3] += 1  # a test that could not even be collected counts as not passed
    total = [sum(r[i] for r in files.values()) for i in range(4)]
    by_backend = {b: [sum(1 for t, o in d.items() if o == "passed" and backend_of(t) == b) for d in (ref, ours)]
                  for b in ("mysql", "postgresql")}
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    lines = [
        f"# Conformance: datajoint {VERSION}'s test suite", "",
        f"Run {stamp} on commit {commit} (MariaDB and PostgreSQL on this machine, moto S3).",
        "Generated by `python -m conformance`; do not edit. Reasons for failures: `conformance/README.md`.", "",
        f"**Total: reference {total[0]}/{total[1]}, dj_dagster {total[2]}/{total[3]}.**", "",
        "Backend-parametrized tests passing: " + ", ".join(
            f"{b}: reference {r}, dj_dagster {o}" for b, (r, o) in by_backend.items()), "",
        "| file | reference passed/total | dj_dagster passed/total |", "| --- | ---: | ---: |",
    ]
    lines += [f"| `{f}` | {r[0]}/{r[1]} | {r[2]}/{r[3]} |" for f, r in sorted(files.items())]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    summary = {"datajoint_version": VERSION, "commit": commit, "run": stamp,
               "reference": {"passed": total[0], "total": total[1]},
               "dj_dagster": {"passed": total[2], "total": total[3]},
               "files": {f: {"reference": r[:2], "dj_dagster": r[2:]} for f, r in sorted(files.items())},
               "failing": sorted(t for t, o in ref.items() if o == "passed" and ours.get(t) != "passed")}
    (HERE / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"reference {total[0]}/{total[1]}, dj_dagster {total[2]}/{total[3]} -> conformance/results.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("both", "ours", "reference"), default="both")
    parser.add_argument("--refresh-reference", action="store_true", help="rerun the reference even if cached")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per test (pytest-timeout)")
    parser.add_argument("--out", type=Path, default=None, help="folder for XML and logs (default: the cache)")
    parser.add_argument("pytest_args", nargs="*", help="after --: paths and pytest options for the suite")
    args = parser.parse_args(argv)
    tree = source_tree()
    out = args.out or CACHE / "runs"
    out.mkdir(parents=True, exist_ok=True)
    partial = bool(args.pytest_args)
    ref_xml = CACHE / f"reference-{VERSION}.xml"
    if args.target in ("both", "reference") and (args.refresh_reference or not ref_xml.exists() or partial):
        xml = run_suite("reference", tree, out, args.pytest_args, args.timeout)
        if not partial:
            shutil.copy(xml, ref_xml)
        ref_xml = xml
    if args.target == "reference":
        return 0
    ours_xml = run_suite("ours", tree, out, args.pytest_args, args.timeout)
    ref, ours = outcomes(ref_xml), outcomes(ours_xml)
    if partial:
        ref = {t: o for t, o in ref.items() if t in ours}
        passed = sum(o == "passed" for o in ours.values())
        log(f"partial run: dj_dagster {passed}/{len(ours)} (reference {sum(o == 'passed' for o in ref.values())})")
        (out / "ours-partial.json").write_text(json.dumps(ours, indent=1))
        return 0
    write_report(ref, ours)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
