"""The README's example runs as written (in a subprocess on a fresh embedded default)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    env["DJ_HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "'twice': 46.0" in out.stdout and "'mouse_id': 2" in out.stdout
    assert (tmp_path / "dj.sqlite").exists()
