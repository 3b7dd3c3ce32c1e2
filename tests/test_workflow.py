"""The research workflow's settings: validation decoding apart from the test's, label
smoothing, Adafactor, early stopping, and `python -m kosum`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from kosum.errors import ConfigError
from kosum.generation import GenerationSettings
from kosum.models.tokenizer_training import train_bpe_tokenizer
from kosum.report.build import build_report
from kosum.training.config_checks import check_config
from kosum.training.memory_estimate import optimizer_states_per_parameter
from kosum.training.module import SummarizationModule
from kosum.training.pipeline import run_training
from tiny_models import tiny_t5

REPO_ROOT = Path(__file__).resolve().parents[1]


def _module(**settings) -> tuple[SummarizationModule, dict[str, torch.Tensor]]:
    tokenizer = train_bpe_tokenizer(["요약할 문서와 요약문의 예시입니다."] * 4, vocab_size=300)
    torch.manual_seed(0)
    model = tiny_t5(len(tokenizer)).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randint(2, len(tokenizer), (3, 9), generator=generator)
    batch = {
        "input_ids": inputs,
        "attention_mask": torch.ones_like(inputs),
        "labels": torch.randint(2, len(tokenizer), (3, 5), generator=generator),
        "index": torch.arange(3),
    }
    greedy = GenerationSettings(generate={"num_beams": 1, "max_length": 6})
    module = SummarizationModule(
        model, tokenizer, optimizer=None, scheduler=None, generation=greedy, **settings
    )
    return module, batch


def test_validation_decodes_with_val_generation_and_the_test_with_generation():
    beams = GenerationSettings(generate={"num_beams": 3, "max_length": 6, "length_penalty": -5.0})
    module, batch = _module(val_generation=beams)
    with torch.no_grad():
        module._eval_step("val", batch)
        module._eval_step("test", batch)
        expected_val, _ = module.generate_batch(batch, beams)
        expected_test, _ = module.generate_batch(batch)
    assert expected_val != expected_test  # the two decodings differ on this model
    assert list(module.eval_outputs["val"].predictions.values()) == expected_val
    assert list(module.eval_outputs["test"].predictions.values()) == expected_test


def test_label_smoothing_replaces_the_cross_entropy_only():
    plain, batch = _module()
    smoothed, _ = _module(label_smoothing=0.1)
    with torch.no_grad():
        logits = plain.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")})
        expected = torch.nn.functional.cross_entropy(
            logits.logits.flatten(0, 1), batch["labels"].flatten(), label_smoothing=0.1
        )
        assert torch.equal(plain.training_loss(batch), logits.loss)
        assert torch.isclose(smoothed.training_loss(batch), expected, atol=1e-6)
        assert not torch.isclose(smoothed.training_loss(batch), logits.loss)


@pytest.mark.parametrize("value", [1.0, -0.1, "yes"])
def test_a_label_smoothing_outside_0_1_is_refused(compose_train, tmp_path, value):
    cfg = compose_train(tmp_path, "experiment=smoke", f"label_smoothing={value}")
    with pytest.raises(ConfigError, match="label_smoothing="):
        check_config(cfg)


@pytest.mark.parametrize("key", ["validate_before_training", "merge", "test"])
def test_a_switch_that_is_not_true_or_false_is_refused(compose_train, tmp_path, key):
    cfg = compose_train(tmp_path, "experiment=smoke", f"{key}=yes")
    with pytest.raises(ConfigError, match=f"^{key}='yes': true or false$"):
        check_config(cfg)


def test_a_misspelt_validation_decoding_argument_is_refused(compose_train, tmp_path):
    cfg = compose_train(tmp_path, "experiment=smoke", "+val_generation.generate.num_beam=4")
    with pytest.raises(ConfigError, match="num_beam"):
        check_config(cfg)


def test_adafactor_is_transformers_with_a_fixed_rate_and_a_factored_state(compose_train, tmp_path):
    cfg = compose_train(tmp_path, "experiment=smoke", "optim=adafactor")
    check_config(cfg)
    optimizer = instantiate(cfg.optim)([torch.nn.Parameter(torch.zeros(4, 4))])
    assert type(optimizer).__module__ == "transformers.optimization"
    assert optimizer.defaults["relative_step"] is False and optimizer.defaults["lr"] == 1e-3
    assert optimizer_states_per_parameter(cfg) < 0.1  # a row and a column per 64x64 matrix


@pytest.mark.slow
def test_early_stopping_stops_and_adafactor_trains(run_cli, tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "kosum.cli.train",
        "experiment=smoke",
        "optim=adafactor",
        "label_smoothing=0.1",
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=1",
        # ROUGE lies in [0, 1]: after the first validation nothing counts as an improvement.
        "callbacks.early_stopping.min_delta=2.0",
        "trainer.max_epochs=6",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "completed" and record["epochs"] == 2
    assert record["config"]["optim"]["_target_"] == "transformers.optimization.Adafactor"
    assert record["config"]["label_smoothing"] == 0.1


def test_python_m_kosum_lists_every_installed_command():
    result = subprocess.run(
        [sys.executable, "-m", "kosum"], capture_output=True, text=True, check=True
    )
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert listed == set(scripts)


def test_sampled_validation_is_the_same_whatever_drew_random_numbers_before():
    sampling = GenerationSettings(
        generate={"num_beams": 2, "do_sample": True, "top_k": 50, "max_length": 6}
    )
    module, batch = _module(val_generation=sampling, seed=3)
    runs = []
    for extra_draws in (0, 5):
        torch.rand(extra_draws)  # what training (dropout) would have drawn
        state = torch.get_rng_state()
        with torch.no_grad():
            module._eval_step("val", batch)
        assert torch.equal(torch.get_rng_state(), state)  # generation drew nothing from it
        runs.append(dict(module.eval_outputs.pop("val").predictions))
    assert runs[0] == runs[1]
    other_seed, _ = _module(val_generation=sampling, seed=4)
    with torch.no_grad():
        other_seed._eval_step("val", batch)
    assert dict(other_seed.eval_outputs["val"].predictions) != runs[0]  # the seed is used


def _examples(compose_train, tmp_path, *overrides):
    from kosum.training.pipeline import build_datamodule

    cfg = compose_train(tmp_path, "experiment=smoke", *overrides)
    return build_datamodule(cfg).examples()


def test_training_categories_vary_while_the_test_set_stays_fixed(compose_train, tmp_path):
    fixed = "data.test_categories=[news_r,minute]"
    one = _examples(compose_train, tmp_path, "data.categories=[news_r]", fixed)
    two = _examples(compose_train, tmp_path, "data.categories=[minute,news_r]", fixed)
    assert {e.category for split in ("train", "val") for e in one[split]} == {"news_r"}
    assert {e.category for e in two["train"]} == {"news_r", "minute"}
    assert [e.id for e in one["test"]] == [e.id for e in two["test"]]
    assert {e.category for e in one["test"]} == {"news_r", "minute"}
    # without test categories, `categories` filters the test set too (as before)
    alone = _examples(compose_train, tmp_path, "data.categories=[news_r]")
    assert {e.category for e in alone["test"]} == {"news_r"}
    assert [e.id for e in alone["test"]] == [e.id for e in one["test"] if e.category == "news_r"]


@pytest.mark.slow
def test_a_sweep_over_training_categories_is_one_paired_comparison(run_cli, tmp_path: Path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "kosum.cli.train",
        "--multirun",
        "experiment=smoke",
        "data.categories=[news_r],[news_r,minute]",
        "data.test_categories=[news_r,minute]",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = run_cli("kosum.cli.report", str(sweep), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr[-3000:]
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "### Paired significance" in markdown and "not paired" not in markdown
    matrix = markdown.split("### Per-category test ROUGE-L")[1]
    assert "| configuration | minute | news_r |" in matrix
    assert "categories=news_r " in matrix and "categories=news_r+minute" in matrix
    assert (tmp_path / "report" / "category_matrix.png").stat().st_size > 0  # the heat map


@pytest.mark.slow
def test_kosum_train_help_is_kosums_usage_with_every_group(run_cli):
    result = run_cli("kosum.cli.train", "--help")
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("kosum-train: adapt a Korean summarisation model")
    groups = sorted(
        path.name
        for path in (REPO_ROOT / "conf").iterdir()
        if path.is_dir() and path.name != "hydra"
    )
    for group in groups:
        options = sorted(p.stem for p in (REPO_ROOT / "conf" / group).glob("*.yaml"))
        assert f"{group}: {', '.join(options)}" in text
    assert "_loader" not in text and "_target_" not in text  # no private option, no dump


@pytest.mark.slow
def test_the_seed_recipe_runs_end_to_end_and_its_sampled_test_reproduces(run_cli, tmp_path):
    """experiment=seed_3rd_place at tiny scale: greedy validation, the seed's 8 beams +
    sampling at test; kosum-eval of the run draws the same samples (same seed and batches)."""
    run_dir = tmp_path / "run"
    result = run_cli(
        "kosum.cli.train",
        "experiment=seed_3rd_place",
        "data=synthetic",
        "model=tiny_t5",
        "data.docs_per_category=5",
        "data.max_source_length=96",
        "data.max_target_length=24",
        "trainer.max_epochs=1",
        "generation.generate.max_length=12",
        "generation.generate.min_length=2",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "completed"
    assert record["config"]["generation"]["generate"]["num_beams"] == 8
    assert record["config"]["generation"]["generate"]["do_sample"] is True
    assert record["config"]["val_generation"]["generate"]["num_beams"] == 1
    evaluated = run_cli("kosum.cli.evaluate", f"run={run_dir}", f"hydra.run.dir={tmp_path / 'e'}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    predictions = (run_dir / "predictions.jsonl").read_text(encoding="utf-8")
    assert (tmp_path / "e" / "predictions.jsonl").read_text(encoding="utf-8") == predictions


@pytest.mark.slow
def test_the_adapter_folder_has_a_model_card_from_the_runs_records(run_cli, tmp_path: Path):
    import yaml

    run_dir = tmp_path / "run"
    result = run_cli("kosum.cli.train", "experiment=smoke", "peft=lora", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    card = (run_dir / "adapter" / "README.md").read_text(encoding="utf-8")
    assert "More Information Needed" not in card  # PEFT's template is replaced
    _, header, body = card.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "summarization"
    assert meta["language"] == ["ko"]
    rouge_l = 100 * record["metrics"]["rougeL"]
    assert f"| ROUGE-L | {rouge_l:.2f} | [" in body
    assert f"`lora`: {record['trainable_params']:,} trainable" in body
    assert "- training categories: news_r, minute" in body
    assert f"commit `{record['git_commit']}`" in body
    assert '"num_beams": 1' in body and '"r": 8' in body


@pytest.mark.slow
def test_wandb_gets_the_adapter_as_an_artifact_and_the_predictions_as_a_table(
    run_cli, tmp_path: Path
):
    from wandb_records import wandb_records

    run_dir = tmp_path / "run"
    result = run_cli(
        "kosum.cli.train", "experiment=smoke", "logger=wandb", f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    artifacts = {a.type: a for r in wandb_records(run_dir) if (a := r.artifact).type}
    files = {entry.path for entry in artifacts["model"].manifest.contents}
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= files
    assert json.loads(artifacts["model"].metadata)["metrics"] == record["metrics"]
    assert {e.path for e in artifacts["run_table"].manifest.contents} == {
        "test/predictions.table.json"
    }
    [table] = run_dir.glob("wandb/offline-run-*/files/media/table/test/predictions_*.table.json")
    content = json.loads(table.read_text(encoding="utf-8"))
    assert content["columns"] == ["id", "category", "prediction", "reference"]
    assert len(content["data"]) == record["data"]["examples"]["test"]


def test_loraplus_gives_lora_b_a_higher_learning_rate(compose_train, tmp_path):
    from kosum.training.config_checks import stand_in_model
    from kosum.training.optimizers import build_optimizer

    cfg = compose_train(tmp_path, "experiment=smoke", "optim=loraplus", "optim.loraplus_lr_ratio=8")
    check_config(cfg)
    model = stand_in_model(width=8, rank=2)
    optimizer = build_optimizer(instantiate(cfg.optim), model)
    lr_of = {
        id(parameter): group["lr"]
        for group in optimizer.param_groups
        for parameter in group["params"]
    }
    for name, parameter in model.named_parameters():
        if "lora_A" in name:
            assert lr_of[id(parameter)] == pytest.approx(cfg.optim.lr)
        if "lora_B" in name:
            assert lr_of[id(parameter)] == pytest.approx(8 * cfg.optim.lr)


@pytest.mark.slow
def test_a_loraplus_run_trains_and_records_its_optimiser(run_cli, tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "kosum.cli.train", "experiment=smoke", "optim=loraplus", f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "completed"
    assert record["config"]["optim"]["_target_"] == "kosum.training.optimizers.loraplus"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_validating_before_training_records_the_start_and_changes_nothing_else(
    compose_train, tmp_path: Path
):
    """`validate_before_training`: the untrained model's validation is recorded (results.json,
    step 0 of the curve, the report's table, a resume), and training is the same as without it.
    LoRA starts from the base model exactly; a prefix does not."""
    runs = tmp_path / "sweep"

    def train(name: str, *overrides: str) -> dict:
        cfg = compose_train(runs / name, "experiment=smoke", "seed=1", *overrides)
        return run_training(cfg)

    plain = train("plain", "trainer.max_epochs=1")
    started = train("started", "trainer.max_epochs=1", "validate_before_training=true")
    base = train("base", "peft=none")
    prefix = train(
        "prefix", "peft=prefix_encdec", "trainer.max_epochs=1", "validate_before_training=true"
    )

    start_keys = {"start_val_rougeL", "start_val_loss"}
    assert start_keys <= set(started["metrics"]) and not start_keys & set(plain["metrics"])
    assert {k: v for k, v in started["metrics"].items() if k not in start_keys} == plain["metrics"]
    for name in ("predictions.jsonl", "adapter/adapter_model.safetensors"):
        assert (runs / "started" / name).read_bytes() == (runs / "plain" / name).read_bytes()
    trained_rows = _csv_rows(runs / "started" / "metrics.csv")
    plain_rows = _csv_rows(runs / "plain" / "metrics.csv")
    losses = [r["train/loss"] for r in trained_rows if r["train/loss"]]
    assert losses and losses == [r["train/loss"] for r in plain_rows if r["train/loss"]]
    first_val = next(r for r in trained_rows if r["val/rougeL"])
    assert first_val["step"] == "0"
    assert float(first_val["val/loss"]) == pytest.approx(started["metrics"]["start_val_loss"])

    base_val_loss = float(
        next(r["val/loss"] for r in _csv_rows(runs / "base" / "metrics.csv") if r["val/loss"])
    )
    assert started["metrics"]["start_val_loss"] == pytest.approx(base_val_loss, rel=1e-6)
    assert started["metrics"]["start_val_rougeL"] == pytest.approx(base["metrics"]["val_rougeL"])
    assert abs(prefix["metrics"]["start_val_loss"] - base_val_loss) > 1e-3

    markdown = build_report([runs], tmp_path / "report", n_resamples=20).markdown
    assert "val ROUGE-L at start" in markdown.read_text(encoding="utf-8")

    # A resume (to train longer) keeps the start of the run, from its checkpoint.
    resumed = train(
        "started", "trainer.max_epochs=2", "validate_before_training=true", "resume=auto"
    )
    assert resumed["epochs"] == 2
    assert resumed["metrics"]["start_val_loss"] == started["metrics"]["start_val_loss"]


def test_a_resume_of_a_run_trained_without_the_start_validation_says_it_has_none(
    compose_train, tmp_path: Path, caplog
):
    run_dir = tmp_path / "run"
    run_training(compose_train(run_dir, "experiment=smoke", "trainer.max_epochs=1"))
    resumed = run_training(
        compose_train(
            run_dir,
            "experiment=smoke",
            "trainer.max_epochs=2",
            "resume=auto",
            "validate_before_training=true",
        )
    )
    assert resumed["epochs"] == 2 and "start_val_rougeL" not in resumed["metrics"]
    assert "was trained without it: no start_val_* in results.json" in caplog.text
