"""Lightning DDP (`trainer=ddp`), on CPU with gloo: sharded batches, gathered evaluation written
once, exact resume; and the launches kosum refuses (DDP inside a local --multirun, FSDP)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from lightning.pytorch.strategies import FSDPStrategy

from kosum.data.batching import LengthGroupedBatchSampler
from kosum.errors import ConfigError
from kosum.io import read_jsonl
from kosum.methods.factory import FullFineTuning
from kosum.methods.peft_method import PeftMethod
from kosum.report.plots import validation_curve
from kosum.training.checkpoint_io import SafetensorsCheckpointIO
from kosum.training.config_checks import check_launch

REPO_ROOT = Path(__file__).resolve().parents[1]
LENGTHS = np.random.default_rng(0).integers(5, 80, size=53).tolist()
DDP = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.precision=32-true",
    "trainer.deterministic=true",
]
# 2 epochs; a checkpoint after every step; test and validation in several batches, an odd
# number of them (so distributed padding repeats one); large steps so that any difference in
# data order or RNG shows in the numbers.
RUN_ARGS = [
    "experiment=smoke",
    "trainer.max_epochs=2",
    "callbacks.last_checkpoint.every_n_train_steps=1",
    "optim.lr=1e-2",
    "data.eval_batch_size=3",
]


def _shares(world: int, shuffle: bool, epoch: int = 0) -> list[list[list[int]]]:
    shares = []
    for rank in range(world):
        sampler = LengthGroupedBatchSampler(
            LENGTHS, batch_size=4, shuffle=shuffle, seed=7, num_replicas=world, rank=rank
        )
        sampler.set_epoch(epoch)
        shares.append(list(sampler))
        assert len(sampler) == len(shares[-1])
    return shares


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("world", [2, 3, 5])
def test_ranks_share_the_single_process_batches(world: int, shuffle: bool):
    single = _shares(1, shuffle)[0]
    shares = _shares(world, shuffle)
    assert len({len(share) for share in shares}) == 1  # every rank steps the same number of times
    # Interleaved, the shares are the single-process batch list, completed from its start.
    interleaved = [batch for step in zip(*shares, strict=True) for batch in step]
    assert interleaved[: len(single)] == single
    assert interleaved[len(single) :] == single[: len(interleaved) - len(single)]
    # every example once, except those of the batches repeated as padding
    seen = Counter(i for share in shares for batch in share for i in batch)
    assert set(seen) == set(range(len(LENGTHS)))
    repeated = {i for batch in interleaved[len(single) :] for i in batch}
    assert {i for i, n in seen.items() if n > 1} == repeated


def test_the_shares_follow_the_seed_and_epoch():
    assert _shares(2, shuffle=True, epoch=1) == _shares(2, shuffle=True, epoch=1)
    assert _shares(2, shuffle=True, epoch=1) != _shares(2, shuffle=True, epoch=0)


def test_a_resumed_rank_skips_its_own_batches_done():
    whole = _shares(2, shuffle=True, epoch=1)[1]
    sampler = LengthGroupedBatchSampler(
        LENGTHS, batch_size=4, shuffle=True, seed=7, num_replicas=2, rank=1
    )
    sampler.set_epoch(1)
    sampler.resume_at(1, 2)
    assert list(sampler) == whole[2:]


def test_fsdp_is_refused_for_an_adapter_and_accepted_for_full_fine_tuning():
    from peft import LoraConfig

    trainer = SimpleNamespace(strategy=FSDPStrategy(), world_size=2)
    with pytest.raises(ConfigError, match="trainer=fsdp with peft=lora: FSDP is for full"):
        check_launch(trainer, PeftMethod(LoraConfig(r=2)))
    check_launch(trainer, FullFineTuning())


@pytest.mark.slow
def test_fsdp_on_cpu_is_refused_in_one_line(run_cli, tmp_path: Path):
    result = run_cli(
        "kosum.cli.train",
        "experiment=smoke",
        "peft=full",
        "trainer=fsdp",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("kosum-train: error: trainer: The strategy `fsdp` requires a GPU")


def _train(run_cli, run_dir: Path, *extra: str) -> dict:
    result = run_cli("kosum.cli.train", *RUN_ARGS, *extra, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_a_ddp_run_and_its_single_process_evaluation_agree(run_cli, tmp_path: Path):
    run_dir = tmp_path / "ddp"
    record = _train(run_cli, run_dir, *DDP, "validate_before_training=true")
    assert record["status"] == "completed"
    # The validation before training ran sharded too: its gathered score, at step 0.
    start = record["metrics"].pop("start_val_rougeL")
    assert 0.0 <= start <= 1.0 and record["metrics"].pop("start_val_loss") > 0
    assert validation_curve(run_dir)[0] == (0, pytest.approx(start))
    assert record["config"]["trainer"]["devices"] == 2
    predictions = read_jsonl(run_dir / "predictions.jsonl")
    ids = [row["id"] for row in predictions]
    # every test example scored once: the repeated padding examples were dropped by index
    assert len(ids) == len(set(ids)) == record["data"]["examples"]["test"] > 6

    evaluated = run_cli("kosum.cli.evaluate", f"run={run_dir}", f"hydra.run.dir={tmp_path / 'e'}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    single = json.loads((tmp_path / "e" / "results.json").read_text(encoding="utf-8"))
    assert single["metrics"] == {k: v for k, v in record["metrics"].items() if k != "val_rougeL"}
    assert read_jsonl(tmp_path / "e" / "predictions.jsonl") == predictions
    # Written once, by rank 0: the second process left only its Hydra log in the run folder.
    assert (run_dir / "train_ddp_process_1.log").exists()
    assert not (run_dir / ".hydra" / "train_ddp_process_1").exists()


@pytest.mark.slow
def test_a_ddp_run_killed_mid_epoch_resumes_exactly(run_cli, cache_dir, tmp_path: Path):
    reference = _train(run_cli, tmp_path / "uninterrupted", *DDP)

    run_dir = tmp_path / "killed"
    env = {**os.environ, "KOSUM_CACHE_DIR": str(cache_dir), "WANDB_MODE": "offline"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kosum.cli.train", *RUN_ARGS, *DDP, f"hydra.run.dir={run_dir}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the group: rank 0 and the rank it started
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert last.exists(), "the run ended before writing a checkpoint"
    killed = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert killed["status"] == "running", "the kill came after the run finished"
    step = SafetensorsCheckpointIO().load_checkpoint(last)["global_step"]
    batches = math.ceil(
        reference["data"]["examples"]["train"] / reference["config"]["data"]["batch_size"]
    )
    assert step % math.ceil(batches / 2) != 0, "killed at an epoch boundary"

    resumed = _train(run_cli, run_dir, *DDP, "resume=auto")
    assert resumed["metrics"] == reference["metrics"]
    assert read_jsonl(run_dir / "predictions.jsonl") == read_jsonl(
        tmp_path / "uninterrupted" / "predictions.jsonl"
    )


@pytest.mark.slow
def test_ddp_inside_a_local_multirun_is_refused(run_cli, tmp_path: Path):
    result = run_cli(
        "kosum.cli.train",
        "--multirun",
        "experiment=smoke",
        *DDP,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]  # the sweep goes on past a refused job
    record = json.loads((tmp_path / "sweep" / "0" / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed"
    assert "processes in a --multirun: Lightning starts them by re-running" in record["error"]
