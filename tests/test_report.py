"""`kosum-report` on hand-made run directories: collection, statistics over seeds, paired tests,
files written, the notebook. Fast: no training (the real sweep → report path is in
test_sweeps.py)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

import kosum.io as kosum_io
from kosum.cli.report import main as report_main
from kosum.data.aihub import CATEGORIES
from kosum.io import write_json, write_jsonl
from kosum.report.aggregate import compare, paired_tests, reference_method, summarize
from kosum.report.build import build_report
from kosum.report.collect import find_run_dirs, load_runs
from kosum.report.labels import format_value
from kosum.report.tracking import MAX_TAG_LENGTH, run_name, run_tags

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Two test examples per category; references and two kinds of predictions.
EXAMPLES = [
    ("a1", "news_r", "서울시는 공원 조성에 예산을 투입하기로 했다."),
    ("a2", "news_r", "부산시는 도로 정비에 예산을 투입하기로 했다."),
    ("b1", "minute", "위원회는 안건을 원안대로 의결했다."),
    ("b2", "minute", "위원회는 예산안을 수정 의결했다."),
]
T_975_DF2 = 4.302652729911275  # Student t quantile (0.975, 2 degrees of freedom)

MakeRun = Callable[..., Path]


@pytest.fixture
def make_run(tmp_path: Path) -> MakeRun:
    """Write a run directory as kosum-train leaves it (results.json, predictions.jsonl,
    metrics.csv, .hydra/) with the given method, seed, ROUGE-L and settings."""

    def _make(
        name: str,
        method: str,
        seed: int,
        rouge_l: float = 0.3,
        *,
        rank: int | None = 8,
        categories: Sequence[str] = ("news_r", "minute"),
        overrides: Sequence[str] = (),
        perfect: Sequence[str] = ("a1", "b1"),
        error: str | None = None,
        trainable: int = 1000,
    ) -> Path:
        run_dir = tmp_path / "sweep" / name
        hydra_dir = run_dir / ".hydra"
        hydra_dir.mkdir(parents=True)
        overrides = [f"peft={method}", f"seed={seed}", *overrides]
        (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        choices = {"model": "tiny_t5", "data": "synthetic", "prompt": "none", "peft": method}
        (hydra_dir / "hydra.yaml").write_text(
            yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
        )
        config = {
            "peft": {"r": rank} if method == "lora" else {"num_virtual_tokens": 20},
            "data": {"categories": list(categories)},
            "optim": {"lr": 2e-4},
            "trainer": {"max_epochs": 1},
        }
        if error is not None:
            (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config))
            write_json(
                run_dir / "results.json",
                {
                    "status": "failed",
                    "method": method,
                    "seed": seed,
                    "error": error,
                    "wall_time_s": 0.5,
                },
            )
            return run_dir
        write_json(
            run_dir / "results.json",
            {
                "status": "completed",
                "method": method,
                "seed": seed,
                "metrics": {
                    "rouge1": rouge_l + 0.1,
                    "rouge2": rouge_l - 0.1,
                    "rougeL": rouge_l,
                    "val_rougeL": rouge_l,
                },
                "trainable_params": trainable,
                "total_params": 100_000,
                "trainable_fraction": trainable / 100_000,
                "wall_time_s": 10.0 + seed,
                "time_per_step_s": 0.05 * seed,
                "tokens_per_s": 1000.0 * seed,
                "peak_memory_mb": 400.0 + seed,
                "config": config,
            },
        )
        write_jsonl(
            run_dir / "predictions.jsonl",
            (
                {
                    "id": example,
                    "prediction": reference if example in perfect else "",
                    "reference": reference,
                    "category": category,
                }
                for example, category, reference in EXAMPLES
            ),
        )
        (run_dir / "metrics.csv").write_text(
            "epoch,step,train/loss,val/rougeL\n0,4,1.0,\n0,4,,0.1\n1,9,,0.2\n", encoding="utf-8"
        )
        return run_dir

    return _make


@pytest.fixture
def lora_vs_prefix(make_run: MakeRun, tmp_path: Path) -> Path:
    """LoRA (ROUGE-L .30/.32/.34, every example right; seed 3 resumed) vs prefix (.20/.21/.22,
    half right), three seeds each, and one failed prefix job."""
    for seed, value in zip((1, 2, 3), (0.30, 0.32, 0.34), strict=True):
        # seed 3 was killed and resumed: still the same configuration
        resumed = ["resume=auto"] if seed == 3 else []
        make_run(
            f"{seed - 1}", "lora", seed, value, perfect=("a1", "a2", "b1", "b2"), overrides=resumed
        )
    for seed, value in zip((1, 2, 3), (0.20, 0.21, 0.22), strict=True):
        make_run(f"{seed + 2}", "prefix", seed, value, trainable=500)
    make_run("6", "prefix", 4, overrides=["trainer.precision=16-mixed"], error="ConfigError: fp16")
    return tmp_path / "sweep"


def test_summary_is_mean_sample_std_and_t_interval() -> None:
    summary = summarize([0.30, 0.32, 0.34])
    assert summary.n == 3
    assert summary.mean == pytest.approx(0.32)
    assert summary.std == pytest.approx(0.02)
    half_width = T_975_DF2 * 0.02 / math.sqrt(3)
    assert (summary.ci_low, summary.ci_high) == pytest.approx(
        (0.32 - half_width, 0.32 + half_width)
    )
    single = summarize([0.5])
    assert single.mean == 0.5 and math.isnan(single.std) and math.isnan(single.ci_low)
    assert summarize([]).n == 0 and summarize([math.nan, 0.1]).n == 1


def test_runs_group_into_configurations_over_seeds(lora_vs_prefix: Path) -> None:
    runs = load_runs([lora_vs_prefix])
    assert len(runs) == 7 and sum(run.completed for run in runs) == 6
    failed = next(run for run in runs if not run.completed)
    assert failed.error == "ConfigError: fp16"
    assert failed.settings["trainer.precision"] == "16-mixed"
    assert failed.settings["data.categories"] == ("news_r", "minute")  # from .hydra/config.yaml

    [comparison] = compare(runs)
    assert [config.label for config in comparison.configs] == ["lora", "prefix"]
    lora, prefix = comparison.configs
    assert lora.seeds == [1, 2, 3]
    assert lora.metric("rougeL").mean == pytest.approx(0.32)
    assert lora.metric("rougeL").std == pytest.approx(0.02)
    assert prefix.metric("rougeL").mean == pytest.approx(0.21)
    assert prefix.cost("trainable_params").mean == 500
    assert comparison.best() is lora
    assert lora.category_scores == {"minute": 1.0, "news_r": 1.0}
    assert prefix.category_scores == {"minute": 0.5, "news_r": 0.5}


def test_paired_test_against_reference_method(lora_vs_prefix: Path) -> None:
    [comparison] = compare(load_runs([lora_vs_prefix]))
    [test] = paired_tests(comparison, "lora", n_resamples=200, seed=0)
    assert test.reference.method == "lora" and test.config.method == "prefix"
    assert test.result["n"] == 4
    assert test.result["mean_diff"] == pytest.approx(-0.5)  # half the examples scored 0
    # two differing examples of four: the sign-flip test finds p = 1/2 (±1 ±1 over four);
    # the paired bootstrap's p would be its minimum, as no resample reaches |Δ| from Δ
    assert test.result["method"] == "paired_permutation"
    assert test.result["p_value"] == pytest.approx(0.5, abs=0.1)
    assert paired_tests(comparison, "full") == []


def test_a_single_example_is_not_significant(make_run: MakeRun, tmp_path: Path) -> None:
    for name, method in (("0", "lora"), ("1", "prefix")):
        run_dir = make_run(name, method, 1)
        rows = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        (run_dir / "predictions.jsonl").write_text(rows[0 if method == "lora" else 1] + "\n")
    (tmp_path / "sweep" / "1" / "predictions.jsonl").write_text(
        json.dumps({"id": "a1", "prediction": "", "reference": EXAMPLES[0][2]}) + "\n"
    )
    [comparison] = compare(load_runs([tmp_path / "sweep"]))
    [test] = paired_tests(comparison, "lora", n_resamples=200)
    assert test.result["n"] == 1 and test.result["mean_diff"] == pytest.approx(-1.0)
    assert test.result["p_value"] == 1.0


def test_a_seed_run_twice_counts_once(lora_vs_prefix: Path, make_run: MakeRun, tmp_path):
    """A copied or re-run seed is not replication: the newest results.json is kept, the other
    named in the report."""
    again = make_run("again", "lora", 2, 0.50, perfect=("a1", "a2", "b1", "b2"))
    [comparison] = compare(load_runs([lora_vs_prefix]))
    lora = comparison.configs[0]
    assert lora.seeds == [1, 2, 3] and [run.path for run in lora.repeated] == [
        (lora_vs_prefix / "1").resolve()
    ]
    assert lora.metric("rougeL").mean == pytest.approx((0.30 + 0.50 + 0.34) / 3)
    markdown = build_report([lora_vs_prefix], tmp_path / "report", n_resamples=50).markdown
    text = markdown.read_text(encoding="utf-8")
    assert "**Left out**" in text and f"{(lora_vs_prefix / '1').resolve()}` (seed 2)" in text
    assert again.exists()
    # results.csv says which rows the statistics counted, and in which configuration
    with (tmp_path / "report" / "results.csv").open(encoding="utf-8") as handle:
        rows = {Path(row["run_dir"]).name: row for row in csv.DictReader(handle)}
    assert rows["1"]["counted"] == "False" and rows["again"]["counted"] == "True"
    assert rows["6"]["counted"] == "False"  # the failed job
    counted = [row for row in rows.values() if row["counted"] == "True"]
    means = {
        label: sum(float(row["rougeL"]) for row in group) / len(group)
        for label in {row["configuration"] for row in counted}
        if (group := [row for row in counted if row["configuration"] == label])
    }
    assert means == pytest.approx({"lora": lora.metric("rougeL").mean, "prefix": 0.21})
    assert {row["comparison"] for row in counted} == {"all runs"}


def test_partial_seeds_are_marked(lora_vs_prefix: Path, tmp_path: Path) -> None:
    """A metric one seed lacks, or seeds without predictions, show how many seeds a number
    covers; a kosum-eval folder among the runs is left out; odd error values do not crash."""
    record_path = lora_vs_prefix / "4" / "results.json"  # prefix, seed 2
    record = json.loads(record_path.read_text(encoding="utf-8"))
    del record["metrics"]["rougeL"]
    write_json(record_path, record)
    (lora_vs_prefix / "5" / "predictions.jsonl").unlink()  # prefix, seed 3
    write_json(
        lora_vs_prefix / "eval" / "results.json",
        {"status": "completed", "seed": 42, "evaluated_run": "x", "metrics": {"rougeL": 0.9}},
    )
    failed = lora_vs_prefix / "6" / "results.json"
    write_json(failed, {**json.loads(failed.read_text(encoding="utf-8")), "error": {"type": "X"}})
    files = build_report([lora_vs_prefix], tmp_path / "report", n_resamples=50)
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "7 runs, 6 completed, 1 failed or unfinished" in markdown  # not the kosum-eval folder
    assert "| prefix | 1, 2, 3 |" in markdown and "(n=2)" in markdown
    assert "| 2/3 vs 3/3 |" in markdown  # prefix seeds with predictions vs lora's
    assert "{'type': 'X'}" in markdown


def test_dict_valued_settings_group_runs(make_run: MakeRun, tmp_path: Path) -> None:
    for seed in (1, 2):
        make_run(f"{seed}", "lora", seed, overrides=["+generation.extra={num_beams:4}"])
    make_run("3", "lora", 1, overrides=["+generation.extra={num_beams:8}"])
    [comparison] = compare(load_runs([tmp_path / "sweep"]))
    assert [config.seeds for config in comparison.configs] == [[1, 2], [1]]


def test_an_edited_yaml_default_splits_configurations(make_run: MakeRun, tmp_path, caplog):
    """Two sweeps with the same overrides, the second after `optim.weight_decay` was edited in
    conf/: two configurations, each with its own seeds, not one averaged over both. Locations
    and worker counts do not count; a run without .hydra/config.yaml is placed by its resolved
    config; a damaged one is listed once, as unreadable."""
    for name, seed, weight_decay in (("1", 1, 0.0), ("2", 2, 0.0), ("3", 1, 0.01), ("4", 2, 0.01)):
        run_dir = make_run(name, "lora", seed)
        composed = {
            "seed": seed,
            "paths": {"output_dir": str(run_dir)},  # differs per run, changes nothing measured
            "optim": {"lr": 2e-4, "weight_decay": weight_decay},
            "data": {
                "loader": {"seed": "${seed}", "cache_dir": f"/cache/{name}"},  # not measured
                "num_workers": seed,
            },
        }
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(composed))
    without = make_run("5", "lora", 3)  # results.json's resolved config only
    record = json.loads((without / "results.json").read_text(encoding="utf-8"))
    record["config"]["optim"]["weight_decay"] = 0.01
    write_json(without / "results.json", record)
    damaged = make_run("6", "lora", 4)
    (damaged / ".hydra" / "config.yaml").write_text("optim: [unclosed", encoding="utf-8")
    with caplog.at_level("WARNING"):
        runs = load_runs([tmp_path / "sweep"])
    assert [run.path.name for run in runs] == ["1", "2", "3", "4", "5", "6"]
    assert runs[-1].status == "unreadable" and "config.yaml" in caplog.text
    [comparison] = compare(runs)
    configs = [
        (config.setting("optim.weight_decay"), config.seeds) for config in comparison.configs
    ]
    assert configs == [(0.0, [1, 2]), (0.01, [1, 2, 3])]
    assert "differ in optim.weight_decay (" in caplog.text  # and in nothing else


def test_batch_size_and_lengths_are_compared_not_split_into_comparisons(
    make_run: MakeRun, tmp_path: Path
) -> None:
    """data.batch_size or data.max_source_length leave the test examples and references as
    they are: one comparison (paired), unlike data.categories."""
    for seed in (1, 2):
        for size in (4, 8):
            make_run(f"{size}-{seed}", "lora", seed, overrides=[f"data.batch_size={size}"])
    make_run("long", "lora", 1, overrides=["data.max_source_length=512"])
    [comparison] = compare(load_runs([tmp_path / "sweep"]))
    assert [config.label for config in comparison.configs] == [
        "lora data.batch_size=4",
        "lora data.batch_size=8",
        "lora data.max_source_length=512",
    ]


def test_merge_neither_splits_nor_labels_configurations(make_run: MakeRun, tmp_path: Path):
    """merge=true also exports merged weights, validate_before_training=true also validates
    the untrained model; what is measured is the same adapter."""
    make_run("plain", "lora", 1)
    make_run("merged", "lora", 2, overrides=["merge=true"])
    make_run("started", "lora", 3, overrides=["validate_before_training=true"])
    make_run("ia3", "ia3", 1, overrides=["merge=false"])
    [comparison] = compare(load_runs([tmp_path / "sweep"]))
    assert sorted(config.label for config in comparison.configs) == ["ia3", "lora"]
    assert [len(config.runs) for config in comparison.configs if config.method == "lora"] == [3]


def test_a_run_from_before_the_data_config_change_is_not_another_configuration(
    make_run: MakeRun, tmp_path: Path
):
    """Runs before 2026-12-08 also composed data.loader (a copy of the data keys)."""
    composed = {"data": {"batch_size": 4}, "optim": {"lr": 2e-4}}
    older = {**composed, "data": {**composed["data"], "loader": {"seed": "${seed}"}}}
    for name, seed, config in (("new", 1, composed), ("old", 2, older)):
        run_dir = make_run(name, "lora", seed)
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    [comparison] = compare(load_runs([tmp_path / "sweep"]))
    assert [(config.label, len(config.runs)) for config in comparison.configs] == [("lora", 2)]


def test_runs_linked_into_a_sweep_folder_are_found_once(lora_vs_prefix: Path, tmp_path):
    """A folder of links to runs kept elsewhere (and a link looping back) is followed, each
    real run once."""
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "lora-1").symlink_to(lora_vs_prefix / "0")
    (linked / "again").symlink_to(lora_vs_prefix / "0")
    (linked / "loop").symlink_to(linked)
    assert find_run_dirs([linked]) == [(lora_vs_prefix / "0").resolve()]


def test_the_recorded_composition_outweighs_a_later_hydra_folder(make_run: MakeRun, tmp_path):
    """A command refused in a finished run's folder replaced its .hydra/ files; the run is
    still described by the composition its results.json recorded."""
    run_dir = make_run("0", "lora", 1)
    record = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    record["composition"] = {
        "choices": {"model": "tiny_t5", "data": "synthetic", "prompt": "none", "peft": "lora"},
        "overrides": ["peft=lora", "seed=1", "optim.lr=0.001"],
        "config": {"optim": {"lr": 0.001}},
    }
    write_json(run_dir / "results.json", record)
    hydra = run_dir / ".hydra"
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(["peft=lora", "optim.lr=-1"]))
    (hydra / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": {"model": "other", "peft": "lora"}}}})
    )
    [run] = load_runs([tmp_path / "sweep"])
    assert run.settings["optim.lr"] == 0.001 and run.settings["model"] == "tiny_t5"
    assert run.overrides == ("peft=lora", "seed=1", "optim.lr=0.001")


def test_labels_keep_every_digit_a_setting_needs() -> None:
    assert format_value(2e-4) == "0.0002" and format_value(0.1) == "0.1"
    assert format_value(0.000123456789) == "0.000123456789"  # not 0.000123457
    assert format_value([1, 2.5, None]) == "1+2.5+none"


def test_reference_method_choice() -> None:
    assert reference_method(["prefix", "lora", "full"]) == "lora"
    assert reference_method(["prefix", "full"]) == "full"
    assert reference_method(["prefix", "lora"], "prefix") == "prefix"
    assert reference_method([]) is None


def test_rank_and_categories_split_configurations_and_comparisons(make_run: MakeRun, tmp_path):
    for rank in (4, 8):
        make_run(f"r{rank}", "lora", 1, 0.3, rank=rank)
    make_run("p", "prefix", 1, 0.2)
    make_run(
        "other", "lora", 1, 0.3, rank=4, categories=["paper"], overrides=["data.categories=[paper]"]
    )
    comparisons = compare(load_runs([tmp_path / "sweep"]))
    assert [comparison.title for comparison in comparisons] == [
        "categories=news_r+minute",
        "categories=paper",
    ]
    assert [config.label for config in comparisons[0].configs] == ["lora r=4", "lora r=8", "prefix"]


def test_report_files(lora_vs_prefix: Path, tmp_path: Path) -> None:
    files = build_report([lora_vs_prefix], tmp_path / "report", n_resamples=200)
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "| lora | 1, 2, 3 | 42.00 ± 2.00 [" in markdown
    # cost columns: time per training step (ms), training tokens per second, peak memory
    assert "| 100 ± 50 ms | 2,000 ± 1,000 | 402 ± 1 MiB |" in markdown
    assert "| prefix | 1, 2, 3 | 31.00 ± 1.00 [" in markdown
    assert "**Best configuration** (highest mean test ROUGE-L): **lora**" in markdown
    assert "### Paired significance against lora" in markdown
    assert "| prefix | -50.00 |" in markdown
    assert "### Per-category test ROUGE-L" in markdown
    assert "ConfigError: fp16" in markdown and "trainer.precision=16-mixed" in markdown
    assert "<table>" in files.html.read_text(encoding="utf-8")

    with files.csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7
    assert {row["status"] for row in rows} == {"completed", "failed"}
    assert {"method", "seed", "peft.r", "data.categories", "optim.lr", "rougeL"} <= set(rows[0])
    assert {"time_per_step_s", "tokens_per_s", "peak_memory_mb"} <= set(rows[0])

    names = {path.name for path in files.figures}
    assert names == {
        "rougeL_vs_params.png",
        "per_category.png",
        "category_matrix.png",  # two configurations with per-category scores
        "val_rougeL_curves.png",
    }
    for path in files.figures:
        assert path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > 1000


def test_damaged_run_files_are_reported_not_fatal(lora_vs_prefix: Path, tmp_path, caplog):
    """A cut-short results.json, a damaged .hydra file and a corrupt predictions line (a job
    killed while writing, a disk filling up) leave the rest of the report intact."""
    (lora_vs_prefix / "cut").mkdir()
    (lora_vs_prefix / "cut" / "results.json").write_text('{"status": "compl', encoding="utf-8")
    (lora_vs_prefix / "3" / ".hydra" / "overrides.yaml").write_text("[peft=prefix", "utf-8")
    # valid YAML, but an override cut short
    (lora_vs_prefix / "6" / ".hydra" / "overrides.yaml").write_text("- data.batch\n", "utf-8")
    predictions = lora_vs_prefix / "0" / "predictions.jsonl"
    predictions.write_text(
        predictions.read_text(encoding="utf-8") + '{"id": "zz", "predic\n', encoding="utf-8"
    )
    # killed after it started: kosum-train's first record, never replaced
    write_json(lora_vs_prefix / "killed" / "results.json", {"status": "running", "seed": 4})
    files = build_report([lora_vs_prefix], tmp_path / "report", n_resamples=50)
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "9 runs, 5 completed, 4 failed or unfinished" in markdown
    assert "| killed | — | 4 |  | unfinished: still running, or killed" in markdown
    assert "results.json: Unterminated string" in markdown  # the cut-short record, by file
    assert "overrides.yaml" in caplog.text  # the damaged .hydra file, by name
    assert "OverrideParseException" in markdown
    assert "| lora | 1, 2, 3 | 42.00 ± 2.00 [" in markdown  # seed 1's other rows still count
    assert "| prefix | 2, 3 |" in markdown  # seed 1 of prefix (folder 3) is the damaged one
    assert f"{predictions}:5: invalid JSON" in caplog.text


def test_report_files_are_readable_by_others(lora_vs_prefix: Path, tmp_path: Path) -> None:
    """Written atomically through a private (0600) temp file, but with the permissions any
    new file gets (0666 less the umask)."""
    files = build_report([lora_vs_prefix], tmp_path / "report", n_resamples=50)
    for path in (files.markdown, files.csv, *files.figures):
        assert path.stat().st_mode & 0o777 == 0o666 & ~kosum_io._UMASK, path


def test_rank_plot_only_when_rank_varies(make_run: MakeRun, tmp_path: Path) -> None:
    for rank in (4, 8):
        for seed in (1, 2):
            make_run(f"r{rank}s{seed}", "lora", seed, 0.3 + rank / 100, rank=rank)
    files = build_report([tmp_path / "sweep"], tmp_path / "report", n_resamples=50)
    assert "rouge_vs_rank.png" in {path.name for path in files.figures}


def test_cli_prints_where_the_report_is(lora_vs_prefix, tmp_path, capsys) -> None:
    assert (
        report_main([str(lora_vs_prefix), "--out", str(tmp_path / "out"), "--resamples", "50"]) == 0
    )
    assert str(tmp_path / "out" / "report.md") in capsys.readouterr().out


def test_cli_without_runs_fails_clearly(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_wandb_tags_fit_and_name_the_configuration() -> None:
    labels: dict[str, Any] = {
        "method": "lora",
        "r": 8,
        "prompt": "none",
        "categories": list(CATEGORIES),
        "seed": 1,
    }
    tags = run_tags(labels)
    assert tags[:3] == ["lora", "r=8", "prompt=none"] and tags[-1] == "seed=1"
    assert all(len(tag) <= MAX_TAG_LENGTH for tag in tags)
    assert tags[3].startswith("categories=10 items #")
    assert run_tags({**labels, "categories": ["news_r"], "r": None})[1:3] == [
        "prompt=none",
        "categories=news_r",
    ]
    assert run_name(labels) == "lora r=8 prompt=none seed=1"


def test_notebook_redraws_the_reports_table(
    lora_vs_prefix: Path, make_run: MakeRun, tmp_path: Path, monkeypatch
) -> None:
    """The notebook's code, run on a report's results.csv (a repeated seed and a failed run
    included), gives the report's configurations and means."""
    make_run("again", "lora", 2, 0.50, perfect=("a1", "a2", "b1", "b2"))
    build_report([lora_vs_prefix], tmp_path / "reports" / "lora_vs_prefix", n_resamples=50)
    [comparison] = compare(load_runs([lora_vs_prefix]))
    path = REPO_ROOT / "notebooks" / "report.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    monkeypatch.chdir(tmp_path / "reports")  # RESULTS_CSV is ../reports/lora_vs_prefix/...
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, Any] = {}
    for index, cell in enumerate(c for c in notebook["cells"] if c["cell_type"] == "code"):
        exec(compile("".join(cell["source"]), f"{path}:cell{index}", "exec"), namespace)
    table = namespace["table"]
    assert [config for _, config in table.index] == [c.label for c in comparison.configs]
    for config in comparison.configs:
        row = table.loc[("all runs", config.label)]
        assert row[("rougeL", "mean")] == pytest.approx(
            config.metric("rougeL").mean * 100, abs=0.01
        )
        assert row[("seeds", "n")] == len(config.runs)
