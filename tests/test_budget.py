"""`trainable_budget=N` sizes every method to N trainable parameters (within 20%), or says why
it cannot, before any data is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate

from kosum.errors import ConfigError
from kosum.methods.factory import apply_method, as_method, parameter_counts
from kosum.models.backbone import load_model
from kosum.models.tokenizer_training import train_bpe_tokenizer
from kosum.training.budget import fit_trainable_budget, nearest_size
from kosum.training.config_checks import check_config


def test_nearest_size_takes_the_closest_count():
    assert nearest_size(lambda r: 100 * r, 1000) == 10
    assert nearest_size(lambda r: 100 * r, 1049) == 10
    assert nearest_size(lambda r: 100 * r, 1051) == 11
    assert nearest_size(lambda r: 100 * r + 5000, 10) == 1  # the smallest it can be
    assert nearest_size(lambda r: r * r, 10**6) == 1000


SIZED = [
    "lora",
    "lora_all_linear",
    "lora_ffn",
    "dora",
    "rslora",
    "adalora",
    "vera",
    "loha",
    "prefix",
    "prefix_encdec",
    "prompt",
]


@pytest.mark.parametrize("method", SIZED)
@pytest.mark.parametrize("budget", ["2e4", "1e5"])
def test_every_sized_method_lands_within_20_percent_of_the_budget(
    compose_train, tmp_path: Path, method: str, budget: str
):
    cfg = compose_train(
        tmp_path, "experiment=smoke", f"peft={method}", f"trainable_budget={budget}"
    )
    check_config(cfg)
    fitted = fit_trainable_budget(cfg)
    assert fitted.setting == f"peft.{as_method(instantiate(cfg.peft)).size_knob}"
    assert cfg.peft[fitted.setting.removeprefix("peft.")] == fitted.value
    assert abs(fitted.trainable_params - float(budget)) <= 0.2 * float(budget)
    # The count on the meta-device skeleton is the count of the real model the run trains.
    spec = instantiate(cfg.model)
    tokenizer = train_bpe_tokenizer(["요약 문장 " * 50], vocab_size=300)
    real = apply_method(load_model(spec, tokenizer), instantiate(cfg.peft))
    assert parameter_counts(real)["trainable_params"] == fitted.trainable_params


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["peft=ia3", "trainable_budget=1e4"], r"ia3 \(peft\): this method has no size knob"),
        (["peft=full", "trainable_budget=1e4"], "full .* no size knob"),
        (["peft=none", "trainable_budget=oops"], "trainable_budget='oops': a positive number"),
        (["peft=oft", "trainable_budget=1e4"], "oft .* no size knob"),
        (["peft=lokr", "trainable_budget=1e4"], "lokr .* no size knob"),
        (["trainable_budget=-3"], "trainable_budget=-3: a positive number"),
        (["trainable_budget=lots"], "trainable_budget='lots': a positive number"),
    ],
)
def test_budgets_that_cannot_apply_stop_before_training(
    compose_train, tmp_path: Path, overrides: list[str], message: str
):
    cfg = compose_train(tmp_path, "experiment=smoke", *overrides)
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


def test_zero_shot_ignores_a_sweeps_budget(compose_train, tmp_path: Path):
    cfg = compose_train(tmp_path, "experiment=smoke", "peft=none", "trainable_budget=1e4")
    check_config(cfg)
    assert fit_trainable_budget(cfg) is None


def test_a_budget_out_of_reach_is_one_line(compose_train, tmp_path: Path):
    """One prefix token in three places of two layers is already 768 parameters."""
    cfg = compose_train(tmp_path, "experiment=smoke", "peft=prefix_encdec", "trainable_budget=100")
    check_config(cfg)
    with pytest.raises(ConfigError) as caught:
        fit_trainable_budget(cfg)
    assert str(caught.value) == (
        "trainable_budget=100: prefix_encdec (peft) cannot come within 20% of it on this model; "
        "nearest is num_virtual_tokens=1 (the smallest), with 768 trainable parameters"
    )


@pytest.mark.slow
def test_a_budget_multirun_records_the_budget_and_the_count(run_cli, tmp_path: Path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "kosum.cli.train",
        "--multirun",
        "experiment=smoke",
        "peft=lora,prefix_encdec",
        "trainable_budget=2e4,1e5",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert len(records) == 4
    for record in records:
        fitted = record["trainable_budget"]
        assert record["status"] == "completed"
        assert record["trainable_params"] == fitted["trainable_params"]
        assert abs(fitted["trainable_params"] - fitted["budget"]) <= 0.2 * fitted["budget"]
    assert {(r["method"], r["trainable_budget"]["budget"]) for r in records} == {
        ("lora", 20000),
        ("lora", 100000),
        ("prefix_encdec", 20000),
        ("prefix_encdec", 100000),
    }


def test_the_pareto_front_keeps_what_no_cheaper_configuration_beats():
    from kosum.report.plots import pareto_front

    points = [(100, 0.30), (200, 0.25), (200, 0.35), (50, 0.20), (400, 0.34), (800, 0.40)]
    assert pareto_front(points) == [(50, 0.20), (100, 0.30), (200, 0.35), (800, 0.40)]
