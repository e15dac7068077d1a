"""The README's worked example of a new metric family runs as written: one file plus one registration line.

The file goes in a temporary folder added to ``idlora_bench.metrics.__path__`` (the source tree is not touched) and
the registration line runs in the metrics package's namespace, in a subprocess so the registry of this test
session keeps its profiles unchanged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REPO_ROOT


def _python_block_after(text: str, marker: str) -> str:
    start = text.index(marker)
    match = re.search(r"```python\n(.*?)```", text[start:], flags=re.DOTALL)
    assert match, f"no python block after {marker!r}"
    return textwrap.dedent(match.group(1))


def test_readme_metric_family_example_registers_scores_and_keeps_the_contract(tmp_path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    module_code = _python_block_after(readme, "`idlora_bench/metrics/loudness_rms.py`:")
    registration = _python_block_after(readme, "and the line in `idlora_bench/metrics/__init__.py`:").strip()
    assert registration.count("\n") == 0, "the registration is one line"
    extra = tmp_path / "extra_metrics"
    extra.mkdir()
    (extra / "loudness_rms.py").write_text(module_code)
    runs = tmp_path / "runs"
    script = textwrap.dedent(f"""
        import json, sys
        import idlora_bench.metrics as metrics
        metrics.__path__.append({str(extra)!r})
        exec({registration!r}, vars(metrics))
        cls = metrics.METRICS.get("loudness.rms")
        assert cls.__module__ == "idlora_bench.metrics.loudness_rms", cls.__module__
        json.dumps(cls.params)
        assert cls().cache_key("0" * 64) != cls().cache_key("1" * 64)
        from idlora_bench.cli import main
        sys.exit(main(["run", "--method", "gt", "--split", "demo", "--profile", "offline", "--metrics", "loudness",
                       "--runs-root", {str(runs)!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Loudness (dBFS)" in done.stdout  # the label comes from the class, through the manifest
    rows = [json.loads(line) for line in (runs / "demo" / "gt-seed0" / "results-offline.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and {row["metric_impl"] for row in rows} == {"loudness.rms"}
    assert all(row["status"] == "ok" and -60.0 < row["value"] < 0.0 for row in rows)  # speech at a sane level
