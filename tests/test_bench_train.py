"""Smoke tests of scripts/bench_train.py: `--quick` runs every variant and prints finite ratios."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "bench_train.py"


def _run(*args: str) -> tuple[str, dict[str, Any]]:
    result = subprocess.run(
        # One thread: on a shared 2-core runner two OpenMP threads can be many times slower.
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1", *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    marker = "RESULT_JSON "
    line = next(line for line in result.stdout.splitlines() if line.startswith(marker))
    return result.stdout, json.loads(line[len(marker) :])


def _table_rows(stdout: str) -> dict[str, list[str]]:
    """Markdown table rows by variant name (header and separator skipped)."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| variant | batch |"), lines[:2]
    assert lines[1].startswith("|---"), lines[:2]
    rows = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


@pytest.mark.slow
def test_quick_run_prints_the_table_with_finite_ratios() -> None:
    stdout, report = _run()
    table = _table_rows(stdout)
    assert {"seed", "hf", "kosum"} <= set(table)
    for cells in table.values():
        vs_seed, vs_hf = cells[7], cells[8]
        assert vs_seed.endswith("×") and vs_hf.endswith("×"), cells
        assert math.isfinite(float(vs_seed[:-1])) and math.isfinite(float(vs_hf[:-1]))
    rows = {row["variant"]: row for row in report["rows"]}
    assert rows["seed"]["vs_seed"] == pytest.approx(1.0)
    assert rows["hf"]["vs_hf"] == pytest.approx(1.0)
    for row in rows.values():
        for key in ("real_tok_s", "padded_tok_s", "vs_seed", "vs_hf"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["variant"], key, row[key])
        assert row["padded_tok_s"] >= row["real_tok_s"]
        assert row["examples"] == report["args"]["steps"] * 4  # equal work at batch 4
    # The seed pads to 1024/128; the dynamic-padding variants compute far fewer pad positions.
    assert rows["seed"]["pad_share"] > rows["kosum"]["pad_share"]
    assert report["machine"]["nproc"] >= 1


def test_synthetic_fallback_runs() -> None:
    stdout, report = _run("--synthetic", "--variants", "kosum,kosum-fast", "--steps", "1")
    assert "synthetic corpus" in stdout
    assert {row["variant"] for row in report["rows"]} == {"kosum", "kosum-fast"}
    assert all("vs_seed" not in row for row in report["rows"])  # no baseline run: n/a
    assert "n/a" in stdout
