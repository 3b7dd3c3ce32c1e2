"""Sweeps through Hydra's submitit launcher, run here with its local executor (the SLURM
launcher's path on this machine): a killed sweep, re-run, finishes only its unfinished jobs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["status"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.slow
def test_a_killed_submitit_sweep_rerun_finishes_only_the_unfinished_job(
    run_cli, cache_dir, tmp_path: Path
):
    sweep = tmp_path / "sweep"
    # Job 0 trains one epoch, job 1 ten: job 1 is still training when job 0 has finished.
    command = [
        sys.executable,
        "-m",
        "kosum.cli.train",
        "--multirun",
        "launcher=submitit_local",
        "experiment=smoke",
        "trainer.max_epochs=1,10",
        "callbacks.last_checkpoint.every_n_train_steps=1",
        "resume=auto",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {
        **os.environ,
        "KOSUM_CACHE_DIR": str(cache_dir),
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
    }
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the launcher and the job processes submitit started
    )
    finished, unfinished = sweep / "0", sweep / "1"
    deadline = time.monotonic() + 400
    while (
        not (_status(finished) == "completed" and (unfinished / "checkpoints/last.ckpt").exists())
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert _status(finished) == "completed"
    assert _status(unfinished) == "running", "job 1 finished before the kill"
    finished_record = (finished / "results.json").read_bytes()

    rerun = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (finished / "results.json").read_bytes() == finished_record  # not trained again
    assert "completed there already; not trained again" in (finished / "train.log").read_text()
    assert _status(unfinished) == "completed"
    assert "resuming from" in (unfinished / "train.log").read_text()
    assert (unfinished / "metrics.before-resume-1.csv").exists()  # continued, not restarted

    result = run_cli("kosum.cli.report", str(sweep), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr[-3000:]
    with (tmp_path / "report" / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and {row["status"] for row in rows} == {"completed"}
