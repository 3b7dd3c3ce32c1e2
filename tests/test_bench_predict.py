"""Smoke test of scripts/bench_predict.py: every candidate runs, ratios are finite, and the
outputs it reports as compared really match (batched greedy = the seed's loop)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "bench_predict.py"


def _bench(tmp_path: Path, *args: str) -> dict:
    """Run the script with `args` (one thread, one repeat); its JSON report."""
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [
            *(sys.executable, str(SCRIPT), *args),
            *("--threads", "1", "--repeats", "1", "--json", str(output)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(output.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_bench_predict_runs_every_candidate(tmp_path: Path):
    report = _bench(
        tmp_path,
        *("--texts", "4", "--presets", "greedy,seed", "--batch-sizes", "2,4"),
        *("--ablation-batch-size", "2"),
    )
    greedy, seed = report["presets"]
    assert [row["candidate"] for row in greedy["candidates"]] == [
        "batched 2",
        "batched 4",
        "batched 2, no T5 fast path",
        "batched 2, padded encoder",
        "batched 2, unsorted",
    ]
    assert "batched 2, stock sampling" in [row["candidate"] for row in seed["candidates"]]
    for preset in (greedy, seed):
        for row in preset["candidates"]:
            assert math.isfinite(row["speedup"]) and row["speedup"] > 0, row
    # greedy decoding: every candidate gives the loop's summaries
    assert all(row["same_as_baseline"] == 4 for row in greedy["candidates"])
    # sampled: the exact speed-ups keep the full candidate's draws at the same seed
    no_fast_path = next(r for r in seed["candidates"] if r["candidate"].endswith("fast path"))
    assert no_fast_path["same_as_batched_2"] == 4
    stock_top_k = next(r for r in seed["candidates"] if r["candidate"].endswith("stock top-k"))
    assert stock_top_k["same_as_batched_2"] == 4


@pytest.mark.slow
def test_bench_predict_measures_the_ablation_size_when_not_listed(tmp_path: Path):
    report = _bench(
        tmp_path,
        *(
            "--texts",
            "2",
            "--presets",
            "greedy",
            "--batch-sizes",
            "2",
            "--ablation-batch-size",
            "1",
        ),
    )
    labels = [row["candidate"] for row in report["presets"][0]["candidates"]]
    assert labels[:2] == ["batched 2", "batched 1"]
    assert "batched 1, unsorted" in labels


def test_check_fast_generation_agrees_on_cpu(tmp_path: Path):
    """scripts/check_fast_generation.py, the GPU check of the fast path, run where CI can: on CPU
    the fast and stock paths give the same summaries for every model and decoding."""
    output = tmp_path / "fast_generation.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "check_fast_generation.py"),
            *("--device", "cpu", "--texts", "4", "--json", str(output)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its synthetic corpus goes under the working directory's .cache/
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    rows = json.loads(output.read_text(encoding="utf-8"))["rows"]
    assert {(row["model"], row["decoding"]) for row in rows} == {
        (model, decoding)
        for model in ("t5", "t5+lora")
        for decoding in ("greedy", "beam4", "beam8_sample")
    }
    assert all(row["same"] == row["texts"] == 4 and row["precision"] == "fp32" for row in rows)
