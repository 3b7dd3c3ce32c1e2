"""`kosum-estimate` against memory measured on CPU, and a real-size (pko-t5-large shape) run.

Run as a script, this file measures one training step in a fresh process: the growth of its
resident set from before the model is built to the step's peak (VmHWM)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from kosum.config import config_dir, register_resolvers
from kosum.methods.factory import as_method
from kosum.models.backbone import model_skeleton
from kosum.training.memory_estimate import (
    estimate_memory,
    optimizer_states_per_parameter,
    saved_activation_bytes,
)

# Activations dominate the first (a small T5, long batch), weights the second (pko-t5-large's
# shape, batch 1).
SHAPES = {
    "small model, long batch": [
        "model=tiny_t5",
        "model.init_config.d_model=256",
        "model.init_config.d_ff=704",
        "model.init_config.num_layers=4",
        "model.init_config.num_decoder_layers=4",
        "data.batch_size=16",
        "data.max_source_length=256",
        "data.max_target_length=48",
    ],
    "pko-t5-large shape, batch 1": [
        "model=pko_t5_large_shape",
        "data.batch_size=1",
        "data.max_source_length=128",
        "data.max_target_length=32",
    ],
}


def _compose(*overrides: str):
    register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose("estimate", overrides=["peft=lora", *overrides])
    finally:
        GlobalHydra.instance().clear()


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def measure(*overrides: str) -> float:
    """MiB the process grows by, from before the model is built to the peak of one step."""
    cfg = _compose(*overrides)
    method = as_method(instantiate(cfg.peft))
    skeleton = model_skeleton(instantiate(cfg.model))
    torch.manual_seed(0)
    before = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here
    model = method.apply(type(skeleton)(copy.deepcopy(skeleton.config)))
    model.train()
    optimizer = instantiate(cfg.optim)([p for p in model.parameters() if p.requires_grad])
    data = cfg.data
    source = torch.randint(2, 1000, (data.batch_size, data.max_source_length))
    target = torch.randint(2, 1000, (data.batch_size, data.max_target_length))
    logits = model(input_ids=source, decoder_input_ids=target).logits
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()).backward()
    optimizer.step()
    return _status_mib("VmHWM") - before


def test_the_optimiser_state_is_measured_not_looked_up():
    assert optimizer_states_per_parameter(_compose()) == 2  # AdamW: two moments
    sgd = _compose("optim._target_=torch.optim.SGD", "~optim.weight_decay", "+optim.momentum=0.9")
    assert optimizer_states_per_parameter(sgd) == 1


def test_saved_activations_grow_with_the_batch_and_a_frozen_model_saves_nothing():
    cfg = _compose(*SHAPES["small model, long batch"])
    skeleton = model_skeleton(instantiate(cfg.model))
    lora = as_method(instantiate(cfg.peft)).apply(copy.deepcopy(skeleton))
    one, two = (saved_activation_bytes(lora, batch, 64, 16) for batch in (1, 2))
    assert one > 0 and two == pytest.approx(2 * one, rel=1e-3)  # scalars aside
    zero_shot = as_method(instantiate(_compose("peft=none").peft))
    assert estimate_memory(_compose("peft=none")).activations == 0
    assert not zero_shot.trains


@pytest.mark.slow
@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_estimate_is_within_20_percent_of_the_measured_peak(shape: str):
    estimate = estimate_memory(_compose(*SHAPES[shape])).total / 2**20
    measured = subprocess.run(
        [sys.executable, __file__, *SHAPES[shape]],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    peak = float(measured.stdout.strip().splitlines()[-1])
    assert abs(estimate - peak) <= 0.2 * peak, (estimate, peak)


@pytest.mark.slow
def test_kosum_estimate_prints_the_parts_and_whether_it_fits(run_cli, tmp_path: Path):
    result = run_cli(
        "kosum.cli.estimate",
        *SHAPES["pko-t5-large shape, batch 1"],
        "peft=lora",
        "gpu_memory_gb=1",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "trainable parameters        2,359,296" in lines  # LoRA r=8 on q and v, 48 layers
    weights = next(line for line in lines if line.startswith("weights"))
    assert float(weights.split()[1].replace(",", "")) > 2900  # ~771M parameters in fp32
    assert lines[-1].startswith("fits a 1 GiB GPU: no")


@pytest.mark.slow
def test_a_lora_step_and_a_seed_preset_generation_at_real_size(run_cli, tmp_path: Path):
    """pko-t5-large's shape on CPU: one LoRA step and the seed's decoding (8 beams + sampling)
    of one test document, batch 1, with the run's peak memory recorded."""
    run_dir = tmp_path / "run"
    result = run_cli(
        "kosum.cli.train",
        "experiment=smoke",
        "model=pko_t5_large_shape",
        "generation=seed",
        "generation.generate.max_length=8",
        "data.batch_size=1",
        "data.eval_batch_size=1",
        "data.max_source_length=64",
        "trainer.max_steps=1",
        "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "completed" and record["trainable_params"] == 2_359_296
    assert record["peak_memory_mb"] > 2900  # the fp32 weights alone are ~2.9 GiB
    assert len((run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()) == 1


if __name__ == "__main__":
    print(measure(*sys.argv[1:]))
