"""End to end: the real `kosum-train` on the smoke experiment, for LoRA and prefix tuning (PEFT's
and kosum's prefix_encdec)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kosum.io import read_jsonl
from kosum.models.tokenizer_training import train_bpe_tokenizer
from kosum.models.trained import load_trained
from kosum.training.checkpoint_io import SafetensorsCheckpointIO
from kosum.training.module import SummarizationModule
from kosum.training.pipeline import run_training
from tiny_models import tiny_t5


def _assert_valid_record(record: dict, method: str) -> None:
    assert record["status"] == "completed"
    assert record["method"] == method
    for key in ("rouge1", "rouge2", "rougeL"):
        value = record["metrics"][key]
        assert math.isfinite(value) and 0.0 <= value <= 1.0, (key, value)
    assert 0 < record["trainable_params"] < record["total_params"]
    assert record["wall_time_s"] > 0
    assert record["peak_memory_kind"] in {"rss", "process_rss"} and record["peak_memory_mb"] > 0
    assert record["versions"]["torch"] and record["versions"]["peft"]
    assert "git_commit" in record
    # what float results on CPU depend on, besides the versions
    assert record["hardware"]["torch_threads"] >= 1 and record["hardware"]["cpu"]


@pytest.mark.parametrize("method", ["lora", "prefix", "prefix_encdec"])
def test_smoke_run_writes_records_and_reloadable_adapter(run_cli, tmp_path: Path, method: str):
    run_dir = tmp_path / method
    result = run_cli(
        "kosum.cli.train", "experiment=smoke", f"peft={method}", f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 0, result.stderr[-3000:]

    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    _assert_valid_record(record, method)
    assert (run_dir / ".hydra" / "config.yaml").exists()
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {
        "train/loss",
        "train/lr",
        "train/tokens_per_s",
        "val/rougeL",
        "val/gen_len",
        "peak_memory_mb",
    } <= set(header)
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert not list((run_dir / "adapter").glob("*.bin"))

    rows = read_jsonl(run_dir / "predictions.jsonl")
    assert rows and set(rows[0]) >= {"id", "prediction", "reference"}
    assert len(rows) == record["data"]["examples"]["test"]

    # The saved adapter, reloaded onto the saved base, regenerates the same predictions.
    model, tokenizer = load_trained(run_dir)
    cfg_generation = record["config"]["generation"]["generate"]
    ids = [r["id"] for r in rows]
    texts = _test_texts(record, ids)
    regenerated = []
    for start in range(0, len(texts), 8):
        batch = tokenizer(
            texts[start : start + 8],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=record["config"]["data"]["max_source_length"],
        )
        with torch.inference_mode():
            out = model.generate(**batch, **cfg_generation)
        regenerated += [t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True)]
    assert regenerated == [r["prediction"] for r in rows]

    # ...and it is the trained adapter, not an inert one: its teacher-forced test loss is the
    # run's, and differs from the base model's (the smoke run barely trains, and its greedy
    # outputs can equal the base model's).
    references = [r["reference"] for r in rows]
    reloaded = _token_mean_loss(model, tokenizer, texts, references, record["config"]["data"])
    with model.disable_adapter():
        base = _token_mean_loss(model, tokenizer, texts, references, record["config"]["data"])
    assert reloaded == pytest.approx(record["metrics"]["loss"], rel=1e-5)
    assert abs(base - reloaded) > 1e-5  # float noise here is ~1e-6


def _token_mean_loss(
    model: torch.nn.Module, tokenizer, texts: list[str], summaries: list[str], data: dict
) -> float:
    total, tokens = 0.0, 0
    for text, summary in zip(texts, summaries, strict=True):
        inputs = tokenizer([text], truncation=True, max_length=data["max_source_length"])
        labels = tokenizer(
            text_target=[summary], truncation=True, max_length=data["max_target_length"]
        )["input_ids"]
        with torch.inference_mode():
            loss = model(
                input_ids=torch.tensor(inputs["input_ids"]), labels=torch.tensor(labels)
            ).loss
        total += float(loss) * len(labels[0])
        tokens += len(labels[0])
    return total / tokens


def _test_texts(record: dict, ids: list[str]) -> list[str]:
    """The test documents' (prompted) texts, re-read through the run's own data config."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from kosum.data.prompts import PromptTemplate
    from kosum.data.split import split_examples

    cfg = OmegaConf.create(record["config"])
    examples = instantiate(cfg.data.source).load().examples
    by_id = {
        e.id: e
        for e in split_examples(
            examples,
            val_fraction=cfg.data.val_fraction,
            test_fraction=cfg.data.test_fraction,
            salt=cfg.data.split_salt,
        )["test"]
    }
    prompt = PromptTemplate(**cfg.prompt)
    return [prompt.format(by_id[i].text, "inference") for i in ids]


def test_same_config_and_seed_give_identical_metrics(compose_train, tmp_path: Path):
    records = []
    for i in range(2):
        cfg = compose_train(tmp_path / f"run{i}", "experiment=smoke", "trainer.max_epochs=1")
        started = time.perf_counter()
        records.append(run_training(cfg))
        # testing on the best checkpoint restores callback state: the clock must not count twice
        assert 0 < records[-1]["wall_time_s"] <= time.perf_counter() - started
    assert records[0]["metrics"] == records[1]["metrics"]
    first = read_jsonl(tmp_path / "run0" / "predictions.jsonl")
    assert first == read_jsonl(tmp_path / "run1" / "predictions.jsonl")


def test_saved_adapter_holds_the_best_checkpoints_weights_without_a_test(
    compose_train, tmp_path: Path
):
    """`val_rougeL` describes the best checkpoint, so the saved weights must be its weights,
    also when no test reloads them. Here "best" is the first validation (lowest step), which
    two epochs of training have moved away from."""
    run_dir = tmp_path / "run"
    cfg = compose_train(
        run_dir,
        "experiment=smoke",
        "test=false",
        "optim.lr=1e-2",
        "callbacks.model_checkpoint.monitor=step",
        "callbacks.model_checkpoint.mode=min",
    )
    run_training(cfg)
    best = SafetensorsCheckpointIO().load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    last = SafetensorsCheckpointIO().load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert best["global_step"] < last["global_step"]
    saved = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert saved
    assert len(saved) == len(best["state_dict"])
    for name, weight in saved.items():  # PEFT saves `x.lora_A.weight` of `x.lora_A.default`
        key = "model." + name.removesuffix(".weight") + ".default.weight"
        assert torch.equal(weight, best["state_dict"][key]), name


def test_unknown_group_option_fails_before_training(run_cli, tmp_path: Path):
    result = run_cli("kosum.cli.train", "peft=lorax", f"hydra.run.dir={tmp_path / 'bad'}")
    assert result.returncode != 0
    assert "lorax" in result.stderr and "peft" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "bad" / "results.json").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["data.path={table}"], "{table}: missing required column(s) ['summary']"),
        ([], "Missing mandatory value: data.path"),
    ],
)
def test_bad_data_is_one_line_not_a_traceback(run_cli, tmp_path: Path, data, message):
    """A table without summaries, or no table at all: as kosum-data and kosum-eval say it."""
    table = tmp_path / "no_summary.csv"
    table.write_text("id,text\na,본문입니다.\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    result = run_cli(
        "kosum.cli.train",
        "experiment=smoke",
        "data=table",
        *(override.format(table=table) for override in data),
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert message.format(table=table) in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["traceback"]


def test_all_empty_predictions_are_warned_about_once_per_split(run_cli, tmp_path: Path):
    """Without smoke's suppress_tokens/min_length the barely trained tiny model predicts only
    padding: ROUGE 0, said once for validation (it runs every epoch) and once for test."""
    run_dir = tmp_path / "empty"
    result = run_cli(
        "kosum.cli.train",
        "experiment=smoke",
        "generation.generate.suppress_tokens=null",
        "generation.generate.min_length=0",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    predictions = read_jsonl(run_dir / "predictions.jsonl")
    assert predictions and not any(row["prediction"] for row in predictions)
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert log.count("every val prediction is empty") == 1
    assert log.count("every test prediction is empty") == 1


def test_a_pretrained_base_is_adapted_in_train_mode(compose_train, tmp_path, monkeypatch):
    """`from_pretrained` returns a model in eval mode, and Lightning keeps each module's mode:
    every training step must still run with the whole model, dropout included, in train mode
    (as the seed and transformers' Trainer train)."""
    tokenizer = train_bpe_tokenizer(["서울시는 공원 조성에 예산을 투입하기로 했다."] * 4, 300)
    base = tmp_path / "pretrained"
    tiny_t5(len(tokenizer), dropout_rate=0.1).eval().save_pretrained(base)
    tokenizer.save_pretrained(base)
    modes: list[bool] = []
    training_step = SummarizationModule.training_step

    def recording_step(self, batch, batch_idx):
        modes.append(all(module.training for module in self.model.modules()))
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(SummarizationModule, "training_step", recording_step)
    run_training(
        compose_train(
            tmp_path / "run",
            "experiment=smoke",
            "model=pretrained",
            f"model.name_or_path={base}",
            "trainer.max_epochs=2",
        )
    )
    assert modes and all(modes)  # the second epoch's too, after validation ran in eval mode


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.precision=17"], "kosum-train: error: trainer: Precision 17 is invalid"),
        (["peft.target_modules=[nope]"], "kosum-train: error: peft (LoraConfig): Target modules"),
        (["data.batch_size=${nope}"], "kosum-train: error: Interpolation key 'nope' not found"),
    ],
)
def test_values_only_lightning_or_peft_check_are_one_line(run_cli, tmp_path, overrides, message):
    """Lightning checks trainer values when it builds the Trainer, PEFT the target modules
    against the model, OmegaConf an interpolation when it is read: still the user's mistake."""
    run_dir = tmp_path / "run"
    result = run_cli("kosum.cli.train", "experiment=smoke", *overrides, f"hydra.run.dir={run_dir}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["status"] == "failed"


def test_a_relative_interpolation_override_runs_and_is_recorded_as_given(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "kosum.cli.train",
        "experiment=smoke",
        "trainer.max_epochs=1",
        "data.eval_batch_size=${.batch_size}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert "data.eval_batch_size=${.batch_size}" in record["composition"]["overrides"]
    assert record["config"]["data"]["eval_batch_size"] == record["config"]["data"]["batch_size"]


def test_fp16_is_refused_with_a_clear_message(run_cli, tmp_path: Path):
    run_dir = tmp_path / "fp16"
    result = run_cli(
        "kosum.cli.train",
        "experiment=smoke",
        "trainer.precision=16-mixed",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 2
    assert "kosum-train: error: trainer.precision=16-mixed: T5 overflows in fp16" in result.stderr
    assert "Traceback" not in result.stderr
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed" and "fp16" in record["error"]
    assert record["config"]["trainer"]["precision"] == "16-mixed"  # what was refused
