"""The conformance runner's own parts: the import shim and the JUnit parsing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conformance.__main__ import outcomes

REPO = Path(__file__).resolve().parent.parent


def test_shim_answers_datajoint_names_with_ours():
    code = textwrap.dedent("""
        import conformance.shim
        import datajoint as dj
        import datajoint.errors
        from datajoint.errors import DataJointError
        import dj_dagster
        assert dj is dj_dagster, dj
        assert datajoint.errors is dj_dagster.errors
        assert DataJointError is dj_dagster.DataJointError
        try:
            import datajoint.no_such_module
        except ModuleNotFoundError as exc:
            assert "datajoint.no_such_module" in str(exc), exc
        else:
            raise AssertionError("a module without a counterpart imported")
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_outcomes_per_test_id(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text(textwrap.dedent("""\
        <testsuites><testsuite>
          <testcase classname="tests.integration.test_fetch" name="test_a"/>
          <testcase classname="tests.integration.test_fetch.TestX" name="test_b[mysql]"><failure message="x"/></testcase>
          <testcase classname="tests.unit.test_gc" name="test_c"><error message="e"/></testcase>
          <testcase classname="tests.unit.test_gc" name="test_d"><skipped/></testcase>
          <testcase classname="" name="tests.unit.test_broken"><error message="collection"/></testcase>
        </testsuite></testsuites>
    """))
    assert outcomes(xml) == {
        "tests/integration/test_fetch.py::test_a": "passed",
        "tests/integration/test_fetch.py::TestX::test_b[mysql]": "failed",
        "tests/unit/test_gc.py::test_c": "error",
        "tests/unit/test_gc.py::test_d": "skipped",
    }
