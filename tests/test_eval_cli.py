"""`kosum-eval` re-runs a trained run's evaluation without training, on its own or other data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from kosum.cli.evaluate import evaluation_config
from kosum.cli.predict import prediction_settings
from kosum.errors import InputError
from kosum.io import read_jsonl
from kosum.models.trained import load_trained, run_config
from kosum.run_folder import BASE_MODEL, RUN_CONFIG
from tiny_models import tiny_t5


def _train_then_evaluate(run_cli, tmp_path: Path, *train_args: str) -> tuple[Path, Path]:
    """A smoke training run, then `kosum-eval` on it; asserts the evaluation reproduces the
    run's test metrics and predictions. Returns (run dir, evaluation dir)."""
    run_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    result = run_cli("kosum.cli.train", "experiment=smoke", *train_args, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    result = run_cli("kosum.cli.evaluate", f"run={run_dir}", f"hydra.run.dir={eval_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((eval_dir / "results.json").read_text(encoding="utf-8"))
    for key in ("rouge1", "rouge2", "rougeL", "loss"):
        assert evaluated["metrics"][key] == trained["metrics"][key], key
    assert read_jsonl(eval_dir / "predictions.jsonl") == read_jsonl(run_dir / "predictions.jsonl")
    return run_dir, eval_dir


@pytest.mark.slow
def test_eval_reproduces_the_training_test_and_takes_other_data(run_cli, tmp_path: Path):
    run_dir, _ = _train_then_evaluate(run_cli, tmp_path, "trainer.max_epochs=1")

    # Another data set (the competition CSV format) through data=table.
    rows = read_jsonl(run_dir / "predictions.jsonl")
    table = tmp_path / "other.csv"
    with table.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "summary"])
        for i in range(12):
            writer.writerow(
                [f"doc{i}", rows[i % len(rows)]["reference"] * 3, rows[i % len(rows)]["reference"]]
            )
    other_dir = tmp_path / "eval-other"
    result = run_cli(
        "kosum.cli.evaluate",
        f"run={run_dir}",
        "data=table",
        f"data.path={table}",
        "split=all",  # the whole file, not the slice a training split would hold out
        f"hydra.run.dir={other_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    other = json.loads((other_dir / "results.json").read_text(encoding="utf-8"))
    assert other["config"]["data"]["path"] == str(table) and other["split"] == "all"
    assert [r["id"] for r in read_jsonl(other_dir / "predictions.jsonl")] == [
        f"doc{i}" for i in range(12)
    ]
    assert 0.0 <= other["metrics"]["rougeL"] <= 1.0

    # The adapter folder alone: data, prompt and decoding come from the run around it.
    adapter_dir = tmp_path / "eval-adapter"
    result = run_cli(
        "kosum.cli.evaluate", f"run={run_dir / 'adapter'}", f"hydra.run.dir={adapter_dir}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_jsonl(adapter_dir / "predictions.jsonl") == read_jsonl(
        run_dir / "predictions.jsonl"
    )


def test_eval_of_a_missing_run_fails_clearly(run_cli, tmp_path: Path):
    result = run_cli(
        "kosum.cli.evaluate",
        f"run={tmp_path / 'nope'}",
        "data=table",
        f"data.path={tmp_path / 'x.csv'}",
        "prompt=none",
        "generation=greedy",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert result.returncode == 2
    message = f"run={tmp_path / 'nope'}: no such run directory"
    assert message in result.stderr and "Traceback" not in result.stderr
    record = json.loads((tmp_path / "eval" / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed" and message in record["error"]


@pytest.mark.slow
def test_zero_shot_run_can_be_evaluated_again_and_missing_data_exits_2(run_cli, tmp_path: Path):
    """peft=none saves no weights: kosum-eval reloads its base as the run loaded it and gets
    the run's own test numbers."""
    run_dir, _ = _train_then_evaluate(run_cli, tmp_path, "peft=none")
    missing = tmp_path / "missing.csv"
    result = run_cli(
        "kosum.cli.evaluate",
        f"run={run_dir}",
        "data=table",
        f"data.path={missing}",
        f"hydra.run.dir={tmp_path / 'eval-missing'}",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert str(missing) in result.stderr and "Traceback" not in result.stderr


def test_a_trained_run_without_its_weights_is_not_taken_for_its_base(tmp_path: Path):
    run_dir = tmp_path / "run"
    model = tiny_t5(50)
    model.save_pretrained(run_dir / BASE_MODEL)  # a random-init base, as runs keep it
    OmegaConf.save({"peft": {"_target_": "peft.LoraConfig"}}, run_dir / RUN_CONFIG)
    with pytest.raises(FileNotFoundError, match="holds no trained model"):
        load_trained(run_dir)


def test_a_run_folder_without_a_method_is_no_trained_model(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    OmegaConf.save({"model": {"name_or_path": "x"}}, run_dir / RUN_CONFIG)
    with pytest.raises(FileNotFoundError, match="holds no trained model"):
        load_trained(run_dir)


def test_each_config_group_builds_only_its_own_classes(tmp_path: Path):
    """A run folder's data node may not build a method's class (or the reverse)."""
    run_dir = _run_folder_with(
        tmp_path,
        prompt={"template": "{text}"},
        data={"source": {"_target_": "peft.LoraConfig"}},
    )
    cfg = OmegaConf.create({"run": str(run_dir), "prompt": None, "generation": None})
    with pytest.raises(InputError, match=r"'peft\.LoraConfig' is not one of kosum's conf/data/"):
        evaluation_config(OmegaConf.create({**cfg, "data": None}))


def test_a_random_init_zero_shot_run_without_its_base_is_not_rebuilt(tmp_path: Path):
    """A new random model is not the one the run evaluated."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {
        "peft": {"_target_": "kosum.methods.factory.ZeroShot"},
        "model": {"_target_": "kosum.models.backbone.ModelSpec", "init_config": {"d_model": 8}},
    }
    OmegaConf.save(config, run_dir / RUN_CONFIG)  # but no base_model/
    with pytest.raises(FileNotFoundError, match="holds no trained model"):
        load_trained(run_dir)


def _run_folder_with(tmp_path: Path, **nodes: object) -> Path:
    """A run folder whose resolved config holds `nodes` (as someone else might hand one over)."""
    run_dir = tmp_path / "foreign-run"
    run_dir.mkdir()
    OmegaConf.save(
        {"peft": {"_target_": "kosum.methods.factory.ZeroShot"}, **nodes}, run_dir / RUN_CONFIG
    )
    return run_dir


PAYLOAD = {"_target_": "torch.load", "f": "payload.pt", "weights_only": False}


def test_a_run_folders_config_builds_only_kosum_objects(tmp_path: Path):
    """kosum-eval/kosum-predict build data, decoding and model objects from a run's config: a
    `_target_` outside kosum (a pickle loader, a shell) is refused before anything is built."""
    run_dir = _run_folder_with(
        tmp_path,
        model=PAYLOAD,
        generation={"_target_": "kosum.generation.GenerationSettings", "extra": PAYLOAD},
        prompt={"template": "{text}", "apply_at": "inference"},
        data={"source": {"_target_": "os.system", "command": "true"}},
    )
    with pytest.raises(InputError, match=r"'torch\.load' is not one of kosum's"):
        load_trained(run_dir)
    cfg = OmegaConf.create({"run": str(run_dir), "prompt": None, "generation": None})
    with pytest.raises(InputError, match=r"generation\.extra\._target_ = 'torch\.load'"):
        prediction_settings(cfg)
    with pytest.raises(InputError, match=r"data\.source\._target_ = 'os\.system'"):
        evaluation_config(OmegaConf.create({**cfg, "data": None}))


@pytest.mark.parametrize(
    ("generation", "message"),
    [
        # a kosum-looking name that walks to another module's function
        ({"_target_": "kosum.models.trained.torch.load"}, "is not one of kosum's"),
        # a target reached through an interpolation, or decoded from a string
        ({"_target_": "kosum.generation.GenerationSettings", "generate": "${evil}"}, "interpol"),
        ("${oc.decode:'{_target_: torch.load}'}", "interpolation"),
        ({"_target_": "kosum.generation.GenerationSettings", "generate": "\\${evil}"}, "interpol"),
    ],
)
def test_run_folder_targets_cannot_be_smuggled_in(tmp_path: Path, generation, message: str):
    run_dir = _run_folder_with(
        tmp_path, generation=generation, evil=PAYLOAD, prompt={"template": "{text}"}
    )
    cfg = OmegaConf.create({"run": str(run_dir), "prompt": None, "generation": None})
    with pytest.raises(InputError, match=message):
        prediction_settings(cfg)
    with pytest.raises(InputError, match=message):
        evaluation_config(OmegaConf.create({**cfg, "data": {"source": None}}))


def test_a_run_folder_without_decoding_settings_asks_for_them(tmp_path: Path):
    run_dir = _run_folder_with(tmp_path, prompt={"template": "{text}"})
    cfg = OmegaConf.create({"run": str(run_dir), "data": {}, "prompt": None, "generation": None})
    with pytest.raises(ValueError, match=r"to take \['generation'\] from"):
        evaluation_config(cfg)


def test_eval_split_choices_and_run_config_of_an_adapter_folder(tmp_path: Path):
    run_dir = _run_folder_with(
        tmp_path,
        prompt={"template": "{text}"},
        generation={"_target_": "kosum.generation.GenerationSettings"},
        data={"max_source_length": 64},
    )
    (run_dir / "adapter").mkdir()
    base = {"prompt": None, "generation": None, "data": None}
    cfg = evaluation_config(
        OmegaConf.create({**base, "run": str(run_dir / "adapter"), "split": "all"})
    )
    assert cfg.prompt.template == "{text}"  # from the run around the adapter folder
    assert cfg.data.whole_source_as_test is True
    cfg = evaluation_config(OmegaConf.create({**base, "run": str(run_dir), "split": "test"}))
    assert "whole_source_as_test" not in cfg.data
    with pytest.raises(ValueError, match="split='train': choose one of test, val, all"):
        evaluation_config(OmegaConf.create({**base, "run": str(run_dir), "split": "train"}))


def test_other_data_is_truncated_as_the_run_truncated_its_own(tmp_path: Path):
    run_dir = _run_folder_with(
        tmp_path,
        prompt={"template": "{text}"},
        generation={"_target_": "kosum.generation.GenerationSettings"},
        data={"max_source_length": 128, "max_target_length": 32},
    )
    table = {"max_source_length": 1024, "max_target_length": 128}
    base = {"run": str(run_dir), "prompt": None, "generation": None, "split": "all"}
    cfg = evaluation_config(OmegaConf.create({**base, "data": table}))
    assert (cfg.data.max_source_length, cfg.data.max_target_length) == (128, 32)


def test_eval_refuses_a_missing_run_and_unknown_generate_arguments(tmp_path: Path):
    with pytest.raises(ValueError, match="run=<run dir, or its adapter/ or model/ folder>"):
        evaluation_config(OmegaConf.create({"run": "???"}))
    run_dir = _run_folder_with(
        tmp_path,
        prompt={"template": "{text}"},
        # as runs before 2026-12-08 recorded it (read without complaint)
        data={"loader": {"_target_": "kosum.data.datamodule.SummarizationDataModule"}},
        generation={
            "_target_": "kosum.generation.GenerationSettings",
            "generate": {"num_beam": 4},
        },
    )
    cfg = {"run": str(run_dir), "prompt": None, "generation": None, "data": None, "split": "test"}
    with pytest.raises(ValueError, match=r"unknown generate\(\) argument\(s\) \['num_beam'\]"):
        evaluation_config(OmegaConf.create(cfg))


def test_an_unfinished_run_is_evaluated_with_a_warning(tmp_path: Path, caplog):
    """A run whose record says `running` (killed, or resumed to train longer) may hold the
    weights of an earlier session: evaluating or predicting with it says so."""
    run_dir = _run_folder_with(tmp_path, prompt={"template": "{text}"})
    (run_dir / "adapter").mkdir()
    (run_dir / "results.json").write_text('{"status": "running"}', encoding="utf-8")
    run_config(run_dir / "adapter")
    assert "results.json says status 'running', not completed" in caplog.text
    caplog.clear()
    (run_dir / "results.json").write_text('{"status": "completed"}', encoding="utf-8")
    run_config(run_dir)
    assert "not completed" not in caplog.text
