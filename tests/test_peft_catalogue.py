"""The PEFT catalogue of conf/peft/ beyond LoRA/IA3/prefix/prompt, where it needs more than the
generic checks of test_methods.py (build, train, save/reload) and
test_generation_consistency.py (generate() = teacher forcing, kosum's fast path):

- each method is labelled by its own name (`peft=dora` is `dora`, not PEFT's type `lora`);
- `lora_ffn` adapts the feed-forward of both T5 v1.0 (`wi`) and T5 v1.1 (`wi_0`, `wi_1`);
- AdaLoRA really reallocates ranks in a kosum-train run (the trainer hook), and its adapter
  reloads after reallocation;
- LoRA initialisations that rewrite the base weights (PiSSA, OLoRA) reload as trained.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from safetensors.torch import load_file

from kosum.config import config_dir
from kosum.methods.factory import as_method, load_adapter
from kosum.methods.peft_method import MERGEABLE_TYPES, PeftMethod
from kosum.training.config_checks import ConfigError, check_config
from tiny_models import tiny_t5

NEW_METHODS = ["dora", "rslora", "vera", "loha", "lokr", "oft", "lora_ffn", "adalora"]
VOCAB = 64
# conf/peft/adalora.yaml's placeholder, which a run replaces with its own optimiser steps.
ADALORA_PLACEHOLDER_STEPS = 1_000_000


def _compose(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=["paths.output_dir=/tmp/run", *overrides])


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "input_ids": torch.randint(3, VOCAB, (4, 12), generator=generator),
        "labels": torch.randint(3, VOCAB, (4, 6), generator=generator),
    }


def _train(model: torch.nn.Module, steps: int, after_step=None) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for step in range(steps):
        optimizer.zero_grad()
        model(**_batch()).loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(step)
    model.eval()


def _logits_and_generations(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced logits (no labels: a reloaded AdaLoRA cannot take them, see below) and
    greedy generations."""
    batch = _batch()
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], decoder_input_ids=decoder_input_ids).logits
        generated = model.generate(input_ids=batch["input_ids"], max_length=8)
    return logits, generated


@pytest.mark.parametrize("name", NEW_METHODS)
def test_method_is_labelled_by_its_choice_and_passes_the_checks(compose_train, tmp_path, name):
    """Reports label a run by `method` (the Hydra choice), so `peft=dora` is `dora` although
    PEFT calls its type LORA."""
    cfg = compose_train(tmp_path / "run", f"peft={name}")
    assert cfg.method == name
    check_config(cfg)


@pytest.mark.parametrize(
    ("feed_forward_proj", "adapted"),
    [("relu", {"wi", "wo"}), ("gated-gelu", {"wi_0", "wi_1", "wo"})],
    ids=["t5_v1.0", "t5_v1.1"],
)
def test_lora_ffn_adapts_the_feed_forward_of_either_t5(feed_forward_proj: str, adapted: set):
    spec = instantiate(_compose("peft=lora_ffn").peft)
    model = as_method(spec).apply(tiny_t5(VOCAB, feed_forward_proj=feed_forward_proj))
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if hasattr(m, "lora_A")}
    assert names == adapted


def test_vera_adapter_holds_its_projections(tmp_path: Path):
    """save_projection: the shared random projections travel with the adapter, so a reload does
    not depend on regenerating them from projection_prng_key."""
    model = as_method(instantiate(_compose("peft=vera").peft)).apply(tiny_t5(VOCAB))
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert {"base_model.vera_A", "base_model.vera_B"} <= set(saved)


# -- AdaLoRA ------------------------------------------------------------------------------------


def _saved_ranks(adapter: Path) -> dict[str, int]:
    saved = load_file(adapter / "adapter_model.safetensors")
    return {key: value.shape[0] for key, value in saved.items() if "lora_E" in key}


@pytest.mark.parametrize("hooked", [True, False], ids=["hooked", "hook_removed"])
def test_adalora_reallocates_ranks_in_a_kosum_run(
    compose_train, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hooked: bool
):
    """kosum-train gives AdaLoRA the run's optimiser steps and calls `update_and_allocate` after
    each step: the saved adapter records a rank pattern and holds the pruned ranks. With the hook
    removed, nothing is reallocated (the check can tell)."""
    from kosum.training.pipeline import run_training

    if not hooked:
        monkeypatch.setattr(PeftMethod, "after_optimizer_step", lambda self, model, step: None)
    run_dir = tmp_path / "run"
    record = run_training(compose_train(run_dir, "experiment=smoke", "peft=adalora"))
    assert record["status"] == "completed" and record["method"] == "adalora"
    saved = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    ranks = _saved_ranks(run_dir / "adapter")
    layers, init_r, target_r = len(ranks), saved["init_r"], saved["target_r"]
    assert layers == 12  # q and v of 2 encoder and 2 decoder blocks, decoder cross-attention too
    if not hooked:
        assert saved["rank_pattern"] is None
        assert set(ranks.values()) == {init_r}
        return
    with (run_dir / "metrics.csv").open(encoding="utf-8") as handle:
        steps = sum(1 for row in csv.DictReader(handle) if row["train/loss"])  # logged each step
    assert saved["total_step"] == steps != ADALORA_PLACEHOLDER_STEPS
    assert saved["rank_pattern"] is not None
    kept = {key: sum(mask) for key, mask in saved["rank_pattern"].items()}
    assert target_r * layers <= sum(kept.values()) < init_r * layers
    assert len(set(kept.values())) > 1  # reallocated between layers, not cut evenly
    assert sorted(ranks.values()) == sorted(kept.values())


def _adalora_after_reallocation(total_step: int = 6):
    spec = instantiate(_compose("peft=adalora", f"peft.total_step={total_step}").peft)
    model = as_method(spec).apply(tiny_t5(VOCAB))
    _train(model, total_step, after_step=model.base_model.update_and_allocate)
    return spec, model


def test_adalora_reloads_after_reallocation(tmp_path: Path):
    """PEFT saves the pruned ranks (the rank pattern's kept entries) and rebuilds layers of those
    ranks on reload: logits and generations are the trained model's."""
    spec, model = _adalora_after_reallocation()
    assert model.peft_config["default"].rank_pattern is not None
    as_method(spec).save(model, tmp_path)
    ranks = _saved_ranks(tmp_path)
    assert sum(ranks.values()) < spec.init_r * len(ranks)  # pruned, as saved
    reloaded = load_adapter(tmp_path, tiny_t5(VOCAB)).eval()
    expected_logits, expected_ids = _logits_and_generations(model)
    logits, ids = _logits_and_generations(reloaded)
    torch.testing.assert_close(logits, expected_logits)
    assert torch.equal(ids, expected_ids)


def test_adalora_saves_the_restored_best_weights_ranks(tmp_path: Path):
    """kosum saves the best checkpoint's weights, restored after later steps reallocated the
    ranks again: the saved ranks must be the restored weights' (PEFT cuts to the rank pattern of
    the last reallocation), or the adapter is not the model that was evaluated."""
    spec = instantiate(_compose("peft=adalora", "peft.total_step=20").peft)
    model = as_method(spec).apply(tiny_t5(VOCAB))
    best: dict[str, torch.Tensor] = {}

    def allocate_and_keep_step_6(step: int) -> None:
        model.base_model.update_and_allocate(step)
        if step == 6:
            best.update({k: v.clone() for k, v in model.state_dict().items() if "lora_" in k})

    _train(model, 12, after_step=allocate_and_keep_step_6)
    model.load_state_dict(best, strict=False)  # what restoring the best checkpoint does
    as_method(spec).save(model, tmp_path)
    reloaded = load_adapter(tmp_path, tiny_t5(VOCAB)).eval()
    expected_logits, expected_ids = _logits_and_generations(model)
    logits, ids = _logits_and_generations(reloaded)
    torch.testing.assert_close(logits, expected_logits)
    assert torch.equal(ids, expected_ids)


def test_a_budget_below_adaloras_target_rank_is_one_line(compose_train, tmp_path: Path):
    from kosum.training.budget import fit_trainable_budget

    cfg = compose_train(tmp_path, "experiment=smoke", "peft=adalora", "trainable_budget=5e3")
    check_config(cfg)
    with pytest.raises(ConfigError, match=r"peft.init_r=3 below peft.target_r=8"):
        fit_trainable_budget(cfg)


@pytest.mark.xfail(
    reason="peft 0.21.2: a reloaded AdaLoRA adapter (inference mode) has no "
    "`trainable_adapter_name`, and AdaLoraModel.forward adds its orthogonality penalty to any "
    "loss, so forward(labels=...) raises AttributeError (peft#571 fixed only label-free calls)",
    raises=AttributeError,
    strict=True,
)
def test_reloaded_adalora_takes_labels(tmp_path: Path):
    spec, model = _adalora_after_reallocation()
    as_method(spec).save(model, tmp_path)
    reloaded = load_adapter(tmp_path, tiny_t5(VOCAB)).eval()
    with torch.no_grad():
        reloaded(**_batch())


# -- LoRA initialisations that rewrite the base weights ---------------------------------------


@pytest.mark.parametrize(
    "init",
    [
        "pissa",
        "olora",
        # PEFT re-runs the init on reload; PiSSA's randomised SVD then gives another residual
        # base (measured: max |logit diff| > 1, other generations): kosum refuses it.
        "pissa_niter_4",
    ],
)
def test_base_rewriting_lora_init_reloads_as_trained(init: str, tmp_path: Path):
    """PiSSA and OLoRA move the adapter's initial part out of the base weights. kosum saves the
    adapter alone and reloads it onto the unmodified base (base_model/ or the pinned hub
    revision): the reload must be the trained model, or the init must be refused up front."""
    cfg = _compose("peft=lora", f"+peft.init_lora_weights={init}")
    try:
        check_config(cfg)
    except ConfigError as error:  # refusing the init is a correct answer too
        assert "init_lora_weights" in str(error)
        return
    method = as_method(instantiate(cfg.peft))
    model = method.apply(tiny_t5(VOCAB))
    _train(model, 10)
    method.save(model, tmp_path)  # what kosum-train does
    base = tiny_t5(VOCAB)  # = the run's base_model/
    torch.manual_seed(123)  # kosum-eval and kosum-predict reload in another process
    reloaded = load_adapter(tmp_path, base).eval()
    expected_logits, expected_ids = _logits_and_generations(model)
    logits, ids = _logits_and_generations(reloaded)
    torch.testing.assert_close(logits, expected_logits)
    assert torch.equal(ids, expected_ids)


@pytest.mark.parametrize("name", NEW_METHODS)
def test_merging_gives_the_adapted_models_logits(name: str):
    """merge=true (kosum-train's merged/, kosum-predict) folds these methods into the base."""
    spec = instantiate(_compose(f"peft={name}").peft)
    assert spec.peft_type in MERGEABLE_TYPES
    model = as_method(spec).apply(tiny_t5(VOCAB)).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
        batch = {"input_ids": _batch()["input_ids"], "decoder_input_ids": _batch()["labels"]}
        adapted = model(**batch).logits
        merged = copy.deepcopy(model).merge_and_unload()(**batch).logits
        with model.disable_adapter():
            base = model(**batch).logits
    assert (adapted - base).abs().max() > 1e-3  # the adapter changes the model
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=0)
