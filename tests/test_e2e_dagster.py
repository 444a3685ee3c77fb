"""End to end: a real `dagster dev` (webserver + daemon) on a free port with a
temporary DAGSTER_HOME, the fractal pipeline on an embedded SQLite file. Rows inserted
into the Manual table become partitions and sensor-triggered runs compute the rest; a
backfill launched through GraphQL finishes; deleted computed rows are recomputed, with at
most one run per partition at a time; a deleted root row removes its partition;
headless Chromium shows every table on the asset graph page."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

import dj_dagster as dj
from tests.e2e_util import ROOT, chromium_page, dagster_dev, env_without_dj, graphql, wait_until

ARTIFACTS = ROOT / "test-artifacts"
TABLES = ["julia_spec", "julia_image", "denoise_method", "denoised"]
PARTITIONS = "fractal__julia_spec"

BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on UnauthorizedError { message }
  }
}
"""


@pytest.fixture
def dev_server(tmp_path):
    dj_home, dagster_home = tmp_path / "dj", tmp_path / "dagster"
    dj_home.mkdir()
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = env_without_dj(DJ_HOME=dj_home, DAGSTER_HOME=dagster_home, DJ_SENSOR_INTERVAL=2,
                         DJ_NEURO_RAW=tmp_path / "raw")
    ARTIFACTS.mkdir(exist_ok=True)
    with dagster_dev(env, ROOT / "workspace.yaml", ARTIFACTS / "dagster-dev.log") as url:
        connection = dj.Connection(f"sqlite:///{dj_home / 'dj.sqlite'}")
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        yield url, connection, instance
        instance.dispose()
        connection.close()


def test_dagster_dev_end_to_end(dev_server, tmp_path):
    url, connection, instance = dev_server
    fractal = wait_until(lambda: dj.virtual_schema("fractal", connection=connection), 60, what="fractal schema")
    fractal.JuliaSpec.insert([(1, -0.8, 0.156, 0.1), (2, 0.285, 0.01, 0.2)])

    # the sensor adds partitions and its runs compute everything downstream
    wait_until(lambda: sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["spec_id=1", "spec_id=2"], 180,
               what="partitions from the sensor")
    wait_until(lambda: len(fractal.Denoised()) == 8, 300, what="sensor-triggered runs to fill Denoised")
    denoised_key = dg.AssetKey(["fractal", "denoised"])
    wait_until(lambda: instance.get_materialized_partitions(denoised_key) == {"spec_id=1", "spec_id=2"}, 120,
               what="partition status equal to the database")

    # a backfill launched through GraphQL finishes
    params = {"assetSelection": [{"path": ["fractal", "julia_image"]}, {"path": ["fractal", "denoised"]}],
              "partitionNames": ["spec_id=1", "spec_id=2"], "fromFailure": False}
    launched = graphql(url, BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    finished = ("COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")
    status = wait_until(lambda: (s := instance.get_backfill(backfill_id).status.value) in finished and s, 300,
                        interval=2, what="backfill to finish")
    assert status == "COMPLETED_SUCCESS"

    # deleting computed rows: the sensor sees the missing work and a run computes it again
    before = instance.get_latest_materialization_event(denoised_key).timestamp
    (fractal.Denoised & {"spec_id": 1}).delete(safemode=False)
    assert len(fractal.Denoised()) == 4
    wait_until(lambda: len(fractal.Denoised()) == 8, 300, what="deleted rows to be recomputed")
    wait_until(lambda: instance.get_latest_materialization_event(denoised_key).timestamp > before, 120,
               what="a new materialization of the recomputed partition")

    # at most one run per partition at any time
    records = [r for r in instance.get_run_records() if r.dagster_run.tags.get("dj/trigger") == "sensor"]
    by_partition: dict[str, list] = {}
    for r in records:
        by_partition.setdefault(r.dagster_run.tags.get("dagster/partition"), []).append(r)
    for partition, runs in by_partition.items():
        spans = sorted((r.create_timestamp.timestamp(), r.end_time or float("inf")) for r in runs)
        overlapping = [(a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]
        assert not overlapping, f"overlapping runs for partition {partition}: {overlapping}"

    # deleting a root row cascades in the database and removes the partition in Dagster
    (fractal.JuliaSpec & {"spec_id": 2}).delete(safemode=False)
    assert len(fractal.Denoised()) == 4
    wait_until(lambda: instance.get_dynamic_partitions(PARTITIONS) == ["spec_id=1"], 180,
               what="partition removal")

    # the asset graph page shows every table
    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    shot = ARTIFACTS / "asset-graph.png"
    lineage = f"{url}/assets/fractal/denoised?view=lineage&lineageScope=upstream&lineageDepth=5"
    page = chromium_page(lineage, tmp_path / "chromium",
                         expect=TABLES, screenshot=shot)
    missing = [t for t in TABLES if t not in page]
    assert not missing, f"asset graph page lacks {missing}"
    assert shot.exists() and shot.stat().st_size > 10_000
