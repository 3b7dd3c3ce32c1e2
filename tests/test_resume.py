"""A run killed with SIGKILL mid-epoch and resumed ends exactly like an uninterrupted run."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from kosum.io import read_jsonl, write_json
from kosum.report.collect import load_runs
from kosum.training.checkpoint_io import SafetensorsCheckpointIO
from kosum.training.config_checks import ConfigError
from kosum.training.run_identity import CHECKPOINT_KEY, check_resume, identity
from kosum.training.run_record import completed_record
from kosum.training.wall_clock import WallClock

REPO_ROOT = Path(__file__).resolve().parents[1]

# Dropout on (the tiny model's default), checkpoints after every optimiser step.
RUN_ARGS = [
    "experiment=smoke",
    "trainer.max_epochs=2",
    "callbacks.last_checkpoint.every_n_train_steps=1",
    "optim.lr=1e-2",  # large steps, so any difference in data order or RNG shows in the metrics
]


def _train(run_cli, run_dir: Path, *extra: str) -> dict:
    result = run_cli("kosum.cli.train", *RUN_ARGS, f"hydra.run.dir={run_dir}", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(run_cli, cache_dir, tmp_path: Path):
    reference = _train(run_cli, tmp_path / "uninterrupted")

    run_dir = tmp_path / "killed"
    env = {**os.environ, "KOSUM_CACHE_DIR": str(cache_dir), "WANDB_MODE": "offline"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kosum.cli.train", *RUN_ARGS, f"hydra.run.dir={run_dir}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    # Both written: the checkpoint callback can save a step before the CSV logger first
    # writes metrics.csv, and the test needs the interrupted log to see it kept aside.
    logged = run_dir / "metrics.csv"
    deadline = time.monotonic() + 300
    while (
        not (last.exists() and logged.exists())
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.exists(), "the run ended before writing a checkpoint"
    killed = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert killed["status"] == "running", "the kill came after the run finished"
    checkpoint = SafetensorsCheckpointIO().load_checkpoint(last)
    batch_size = reference["config"]["data"]["batch_size"]
    steps_per_epoch = math.ceil(reference["data"]["examples"]["train"] / batch_size)
    assert checkpoint["global_step"] % steps_per_epoch != 0, "killed at an epoch boundary"

    killed_session_s = checkpoint["callbacks"]["WallClock"]["elapsed_s"]
    assert killed_session_s > 0

    # resuming with other training settings is refused before any data loads
    before = last.read_bytes()
    refused = run_cli(
        "kosum.cli.train", *RUN_ARGS, f"hydra.run.dir={run_dir}", "resume=auto", "peft.r=2"
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "other training settings than it was saved with (1): peft.r: 8 → 2" in refused.stderr
    assert last.read_bytes() == before and not (run_dir / "metrics.before-resume-1.csv").exists()

    resume_started = time.perf_counter()
    resumed = _train(run_cli, run_dir, "resume=auto")
    resumed_session_s = time.perf_counter() - resume_started
    # the killed session's time is counted, once
    assert killed_session_s < resumed["wall_time_s"] < killed_session_s + resumed_session_s
    assert resumed["metrics"] == reference["metrics"]
    assert read_jsonl(run_dir / "predictions.jsonl") == read_jsonl(
        tmp_path / "uninterrupted" / "predictions.jsonl"
    )
    assert (run_dir / "metrics.before-resume-1.csv").exists()  # the interrupted log is kept


def _train_losses(run_dir: Path) -> dict[int, str]:
    """`train/loss` by step from the run's metrics.csv (the resumed session's log)."""
    with (run_dir / "metrics.csv").open(encoding="utf-8") as handle:
        return {
            int(row["step"]): row["train/loss"]
            for row in csv.DictReader(handle)
            if row["train/loss"]
        }


LIMIT = 3  # trainer.limit_train_batches: epochs of 3 batches


@pytest.mark.slow
@pytest.mark.parametrize(
    "saved",
    [
        "mid-epoch",
        "before the epoch's validation",
        "at the epoch's end",
        "at a limited epoch's end",
    ],
)
def test_a_resume_in_a_later_epoch_trains_on_that_epochs_batches(run_cli, tmp_path, saved):
    """A run resumed from a checkpoint written in epoch 1 trains on the batches the
    uninterrupted run trained on: every later step's loss is the same. The checkpoint is the
    uninterrupted run's own (every one is kept), copied into a fresh run folder as its
    last.ckpt: what a run killed right after writing it leaves behind. Checkpoints after a
    training step (`every_n_train_steps`) and at the end of an epoch (the default) differ in
    Lightning's loop state; with `limit_train_batches` an epoch ends before its data does. No
    step checkpoint is written after an epoch's last batch (Lightning would resume it past the
    epoch's validation): a run killed in validation resumes from the step before."""
    settings = [
        "trainer.max_epochs=3",
        "callbacks.last_checkpoint.filename='{step}'",
        "callbacks.last_checkpoint.save_top_k=-1",
        "callbacks.last_checkpoint.every_n_train_steps="
        + ("1" if saved in ("mid-epoch", "before the epoch's validation") else "null"),
    ]
    if saved == "at a limited epoch's end":
        settings.append(f"+trainer.limit_train_batches={LIMIT}")
    reference_dir = tmp_path / "uninterrupted"
    reference = _train(run_cli, reference_dir, *settings)
    steps_per_epoch = (
        LIMIT
        if saved == "at a limited epoch's end"
        else math.ceil(
            reference["data"]["examples"]["train"] / reference["config"]["data"]["batch_size"]
        )
    )
    reference_losses = _train_losses(reference_dir)
    assert len(reference_losses) == 3 * steps_per_epoch
    step = {
        "mid-epoch": steps_per_epoch + 2,
        "before the epoch's validation": 2 * steps_per_epoch - 1,
    }.get(saved, 2 * steps_per_epoch)
    if saved == "before the epoch's validation":
        assert not (reference_dir / "checkpoints" / f"step={2 * steps_per_epoch}.ckpt").exists()
    run_dir = tmp_path / "resumed"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(
        reference_dir / "checkpoints" / f"step={step}.ckpt", run_dir / "checkpoints" / "last.ckpt"
    )
    _train(run_cli, run_dir, *settings, "resume=auto")
    resumed_losses = _train_losses(run_dir)
    assert sorted(resumed_losses) == list(range(step, 3 * steps_per_epoch))
    assert resumed_losses == {s: reference_losses[s] for s in resumed_losses}


@pytest.mark.slow
def test_a_run_killed_in_a_validation_resumes_into_it(run_cli, tmp_path):
    """Killed while validating epoch 0: its last checkpoint is the step before the epoch's last
    batch, so the resumed run retrains that batch, validates epoch 0 and chooses its best
    checkpoint on the same validations as the uninterrupted run: the same metrics. (A
    checkpoint after the last batch was resumed past the validation and tested other weights.)"""
    settings = [
        "trainer.max_epochs=3",
        "callbacks.last_checkpoint.filename='{step}'",
        "callbacks.last_checkpoint.save_top_k=-1",
        "callbacks.last_checkpoint.every_n_train_steps=1",
    ]
    reference = _train(run_cli, tmp_path / "uninterrupted", *settings)
    batch_size = reference["config"]["data"]["batch_size"]
    steps_per_epoch = math.ceil(reference["data"]["examples"]["train"] / batch_size)
    checkpoints = tmp_path / "uninterrupted" / "checkpoints"
    assert not (checkpoints / f"step={steps_per_epoch}.ckpt").exists()
    run_dir = tmp_path / "killed"
    (run_dir / "checkpoints").mkdir(parents=True)
    last_written = checkpoints / f"step={steps_per_epoch - 1}.ckpt"
    shutil.copy(last_written, run_dir / "checkpoints" / "last.ckpt")
    resumed = _train(run_cli, run_dir, *settings, "resume=auto")
    assert resumed["metrics"] == reference["metrics"]
    with (run_dir / "metrics.csv").open(encoding="utf-8") as handle:
        validated = [row["epoch"] for row in csv.DictReader(handle) if row["val/rougeL"]]
    assert validated == ["0", "1", "2"]


def test_wall_clock_adds_the_sessions_before_a_resume():
    killed = WallClock(started=time.perf_counter() - 10.0)  # a session that ran 10 s
    state = killed.state_dict()  # as saved in its last checkpoint
    resumed = WallClock(started=time.perf_counter() - 2.0)  # 2 s into the resumed session
    resumed.setup(trainer=None, pl_module=None, stage="fit")
    resumed.load_state_dict(state)
    assert 12.0 <= resumed.elapsed_s() < 13.0
    tested = WallClock(started=time.perf_counter() - 2.0)  # testing on the best checkpoint
    tested.setup(trainer=None, pl_module=None, stage="test")
    tested.load_state_dict(state)
    assert 2.0 <= tested.elapsed_s() < 3.0


def test_a_resume_compares_the_training_settings_with_the_checkpoints(
    compose_train, tmp_path: Path, caplog
):
    """Locations, workers and max_epochs may change on a resume (the length with a warning:
    the schedule is laid out anew); what is trained may not."""
    cfg = compose_train(tmp_path / "run", "experiment=smoke")
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    SafetensorsCheckpointIO().save_checkpoint({CHECKPOINT_KEY: _identity(cfg)}, checkpoint)
    check_resume(checkpoint, _identity(cfg))
    for harmless in (
        "data.num_workers=1",
        "trainer.max_epochs=9",
        "+trainer.limit_train_batches=3",
        "data.eval_batch_size=3",
    ):
        check_resume(
            checkpoint, _identity(compose_train(tmp_path / "run", "experiment=smoke", harmless))
        )
    assert caplog.text.count("the learning-rate schedule is laid out over the new length") == 2
    assert "trainer.max_epochs: 2 → 9" in caplog.text
    assert "trainer.limit_train_batches: None → 3" in caplog.text
    changed = compose_train(
        tmp_path / "run", "experiment=smoke", "seed=7", "peft.target_modules=[k,v]"
    )
    with pytest.raises(ConfigError) as error:
        check_resume(checkpoint, _identity(changed))
    assert "peft.target_modules: ['q', 'v'] → ['k', 'v']" in str(error.value)
    assert "seed: 42 → 7" in str(error.value)
    SafetensorsCheckpointIO().save_checkpoint({"epoch": 1}, checkpoint)  # an older kosum's
    check_resume(checkpoint, _identity(changed))  # nothing to compare with: allowed (logged)


def test_a_checkpoint_with_the_older_copy_of_the_data_keys_resumes(compose_train, tmp_path):
    """Runs before 2026-12-08 also saved the data keys under data.loader: no difference."""
    cfg = compose_train(tmp_path / "run", "experiment=smoke")
    older = _identity(cfg)
    older["data"]["loader"] = {"batch_size": cfg.data.batch_size, "seed": cfg.seed}
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    SafetensorsCheckpointIO().save_checkpoint({CHECKPOINT_KEY: older}, checkpoint)
    check_resume(checkpoint, _identity(cfg))
    older["data"]["loader"]["batch_size"] += 1  # only the old copy may go: data.* still counts
    older["data"]["batch_size"] += 1
    SafetensorsCheckpointIO().save_checkpoint({CHECKPOINT_KEY: older}, checkpoint)
    with pytest.raises(ConfigError, match=r"data\.batch_size: "):
        check_resume(checkpoint, _identity(cfg))


def test_resume_auto_knows_a_run_completed_before_the_data_config_change(tmp_path: Path):
    """A completed run is not trained again by resume=auto: with the older data.loader copy in
    its record, and whether the re-run asks for validate_before_training or not."""
    config = {"seed": 1, "data": {"batch_size": 4}, "resume": "auto"}
    older = {"seed": 1, "data": {"batch_size": 4, "loader": {"batch_size": 4}}, "resume": False}
    write_json(tmp_path / "results.json", {"status": "completed", "config": older})
    assert completed_record(tmp_path, config) is not None
    assert completed_record(tmp_path, {**config, "validate_before_training": True}) is not None
    assert completed_record(tmp_path, {**config, "seed": 2}) is None


def _identity(cfg) -> dict:
    return identity(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.slow
def test_a_run_folder_moved_before_its_resume_keeps_its_best_checkpoint(run_cli, tmp_path):
    """Resuming a moved run folder tests the best checkpoint, as in the original folder
    (Lightning alone would forget it, the folder's path having changed, and test whatever
    validated next). The last.ckpt is from the end of training: the resume only tests. The
    finished run's record is kept aside, and a refused resume leaves it alone."""
    original = _train(run_cli, tmp_path / "original", "trainer.max_epochs=3")
    moved_dir = tmp_path / "elsewhere" / "moved"
    moved_dir.parent.mkdir()
    shutil.move(tmp_path / "original", moved_dir)  # the old folder, and its best.ckpt, gone
    record = (moved_dir / "results.json").read_bytes()
    refused = run_cli(
        "kosum.cli.train", *RUN_ARGS, f"hydra.run.dir={moved_dir}", "resume=auto", "peft.r=2"
    )
    assert refused.returncode == 2 and (moved_dir / "results.json").read_bytes() == record
    assert f"not recorded: {moved_dir}/results.json keeps the completed run" in refused.stderr
    [listed] = load_runs([moved_dir])  # .hydra/ now holds the refused command's settings
    assert listed.settings["peft.r"] == 8 and "peft.r=2" not in listed.overrides
    moved = _train(run_cli, moved_dir, "trainer.max_epochs=3", "resume=auto")
    assert moved["metrics"] == original["metrics"]
    assert "val_rougeL" in moved["metrics"]
    assert (moved_dir / "results.before-resume-1.json").read_bytes() == record
