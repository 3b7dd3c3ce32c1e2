"""Failures a long sweep meets: a loss that stops being a number."""

from __future__ import annotations

import json
from pathlib import Path


def test_a_nan_loss_stops_the_run_at_its_step_and_records_why(run_cli, tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "kosum.cli.train",
        "experiment=smoke",
        "peft=full",
        "optim.lr=1e30",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("kosum-train: error: the training loss is nan at optimiser step ")
    assert "a learning rate too high" in error
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed" and "TrainingDiverged" in record["error"]
    assert "metrics" not in record  # nothing after the divergence is reported as a result
    assert not (run_dir / "predictions.jsonl").exists() and not (run_dir / "model").exists()
    # It stopped at the step: no checkpoint was written after it (the first is at epoch end).
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()
