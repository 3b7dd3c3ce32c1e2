"""Sweeps through the real `kosum-train`: multirun with a failing job, the joblib launcher, W&B
offline labels, an Optuna study resumed from SQLite, and `kosum-report` on a real sweep.

The sweep fixture trains six smoke jobs (about a minute on 2 CPU cores) once for the module;
config-composition tests are fast.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig
from wandb.proto import wandb_internal_pb2

from kosum.cli.train import objective
from kosum.config import config_dir, wandb_offline
from wandb_records import wandb_records

REPO_ROOT = Path(__file__).resolve().parents[1]
SMOKE_SWEEP = ["experiment=smoke", "trainer.max_epochs=1"]


def _compose(*overrides: str) -> DictConfig:
    """conf/train.yaml with Hydra's own config (launcher, sweeper, mode), as kosum-train sees it."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def _kosum(cache_dir: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    """A kosum entry point in a subprocess (conftest's `run_cli`, usable from a module-scoped
    fixture)."""
    env = {**os.environ, "KOSUM_CACHE_DIR": str(cache_dir), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def test_objective_is_the_configured_metric_or_mean() -> None:
    metrics = {"rouge1": 0.4, "rouge2": 0.2, "rougeL": 0.3, "val_rougeL": 0.35}
    assert objective(metrics, "val_rougeL") == 0.35
    assert objective(metrics, ["rouge1", "rouge2", "rougeL"]) == pytest.approx(0.3)
    assert objective(metrics, "rougeLsum") is None
    assert objective({"val_rougeL": math.nan}, "val_rougeL") is None


@pytest.mark.parametrize(
    ("overrides", "launcher", "sweeper"),
    [
        ((), "BasicLauncher", "BasicSweeper"),
        (("launcher=joblib",), "JoblibLauncher", "BasicSweeper"),
        (("launcher=slurm",), "SlurmLauncher", "BasicSweeper"),
        (("launcher=submitit_local",), "LocalLauncher", "BasicSweeper"),
        (("hparams_search=smoke_optuna",), "BasicLauncher", "OptunaSweeper"),
        (("hparams_search=lora_optuna", "launcher=joblib"), "JoblibLauncher", "OptunaSweeper"),
    ],
)
def test_launchers_and_sweepers_compose(overrides, launcher: str, sweeper: str) -> None:
    cfg = _compose(*overrides)
    assert cfg.hydra.launcher._target_.endswith(launcher)
    assert cfg.hydra.sweeper._target_.endswith(sweeper)
    assert cfg.optimized_metric == "val_rougeL"


@pytest.mark.parametrize(
    ("overrides", "nodes", "tasks"),
    [(("trainer=gpu",), 1, 1), (("trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"), 2, 4)],
)
def test_slurm_gives_one_task_per_gpu_as_lightning_expects(overrides, nodes: int, tasks: int):
    launcher = _compose("launcher=slurm", *overrides).hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (
        nodes,
        tasks,
        tasks,
    )


def test_smoke_optuna_searches_lr_and_rank_of_the_smoke_experiment() -> None:
    cfg = _compose("hparams_search=smoke_optuna")
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.hydra.runtime.choices.experiment == "smoke"
    assert cfg.hydra.sweeper.direction == "maximize"
    assert cfg.hydra.sweeper.storage.startswith("sqlite:///")
    assert cfg.hydra.sweeper.study_name == "smoke_optuna"  # as docs/sweeps-and-reports.md loads it
    assert set(cfg.hydra.sweeper.params) == {"optim.lr", "peft.r"}


def test_lora_optuna_studies_are_per_model_and_data() -> None:
    """Trials of a search on other data must not join an existing study."""
    names = {
        _compose("hparams_search=lora_optuna", *choices).hydra.sweeper.study_name
        for choices in [(), ("data=table",), ("model=lcw99_t5_large",)]
    }
    assert names == {
        "train-lora-tiny_t5-synthetic",
        "train-lora-tiny_t5-table",
        "train-lora-lcw99_t5_large-synthetic",
    }


@pytest.mark.parametrize(
    ("overrides", "model", "data"),
    [
        ((), "lcw99_t5_large", "aihub"),
        (("model=tiny_t5", "data=synthetic"), "tiny_t5", "synthetic"),  # other choices compose
    ],
)
def test_lora_vs_prefix_is_a_multirun_over_methods_and_seeds(overrides, model, data) -> None:
    cfg = _compose("experiment=lora_vs_prefix", *overrides)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert dict(cfg.hydra.sweeper.params) == {"peft": "lora,prefix,prefix_encdec", "seed": "1,2,3"}
    assert (cfg.hydra.runtime.choices.model, cfg.hydra.runtime.choices.data) == (model, data)


EXPERIMENTS = sorted(path.stem for path in (Path(config_dir()) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_passes_the_config_checks(
    compose_train, tmp_path: Path, experiment: str
) -> None:
    from kosum.training.config_checks import check_config

    check_config(compose_train(tmp_path, f"experiment={experiment}"))


def test_the_prefix_study_sweeps_five_methods_at_two_budgets_over_three_seeds() -> None:
    cfg = _compose("experiment=prefix_study")
    assert cfg.hydra.mode == RunMode.MULTIRUN
    params = {key: value.split(",") for key, value in cfg.hydra.sweeper.params.items()}
    assert params == {
        "peft": ["lora", "lora_ffn", "prefix", "prefix_encdec", "prefix_encdec_encoder"],
        "trainable_budget": ["1e4", "4e4"],
        "seed": ["1", "2", "3"],
    }
    # the demo's stage-2 task, which the study doc's numbers come from
    assert (cfg.data.summary_field, cfg.data.test_fraction) == ("summary1", 0.4)


def test_wandb_sweep_runs_the_train_entry_point_as_single_runs() -> None:
    sweep = yaml.safe_load((REPO_ROOT / "scripts" / "wandb_sweep.yaml").read_text(encoding="utf-8"))
    command = sweep["command"]
    assert command[:4] == ["${env}", "${interpreter}", "-m", "kosum.cli.train"]
    assert command[-1] == "${args_no_hyphens}"
    assert (REPO_ROOT / sweep["program"]).exists()
    # What one agent run composes: the fixed arguments, then one point of the grid.
    grid_point = [
        f"{name}={spec['values'][0] if 'values' in spec else spec['value']}"
        for name, spec in sweep["parameters"].items()
    ]
    cfg = _compose(*command[4:-1], *grid_point)
    assert cfg.hydra.mode == RunMode.RUN
    assert (cfg.hydra.runtime.choices.peft, cfg.seed, cfg.task_name) == (
        "lora",
        1,
        "lora_vs_prefix",
    )
    assert "wandb" in cfg.logger


def test_wandb_logger_is_grouped_named_and_tagged(compose_train, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_train(
        tmp_path, "experiment=smoke", "logger=wandb", "peft.r=4", "seed=3", "task_name=sweep"
    )
    logger = instantiate(cfg.logger.wandb)  # no W&B run starts until logger.experiment is used
    settings = logger._wandb_init
    assert settings["group"] == "sweep"
    assert settings["name"] == "lora r=4 prompt=none seed=3"
    assert settings["tags"] == [
        "smoke",
        "lora",
        "r=4",
        "prompt=none",
        "categories=news_r+minute",
        "seed=3",
    ]
    # one W&B run per kosum run: a resumed session (same folder) logs to the same id
    assert settings["resume"] == "allow" and len(settings["id"]) == 8
    assert (tmp_path / "wandb_run_id").read_text(encoding="utf-8").strip() == settings["id"]
    assert instantiate(cfg.logger.wandb)._wandb_init["id"] == settings["id"]
    other = compose_train(tmp_path / "other", "experiment=smoke", "logger=wandb")
    assert instantiate(other.logger.wandb)._wandb_init["id"] != settings["id"]


def _wandb_run_records(run_dir: Path) -> Iterator[wandb_internal_pb2.RunRecord]:
    return (record.run for record in wandb_records(run_dir) if record.HasField("run"))


@pytest.fixture(scope="module")
def sweeps(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real sweeps of the smoke experiment (one epoch):
    - `main`: lora, prefix × seeds 1, 2 with the joblib launcher (2 parallel jobs);
    - `extra`: one LoRA seed 3 job refused (fp16) before one that trains, logged to W&B offline.
    """
    root = tmp_path_factory.mktemp("sweeps")
    runs = {
        "main": ["launcher=joblib", "peft=lora,prefix", "seed=1,2"],
        "extra": [
            "logger=wandb",
            "task_name=sweep_test",
            "peft=lora",
            "seed=3",
            "trainer.precision=16-mixed,32-true",
        ],
    }
    for name, overrides in runs.items():
        result = _kosum(
            cache_dir,
            "kosum.cli.train",
            "--multirun",
            *SMOKE_SWEEP,
            *overrides,
            f"hydra.sweep.dir={root / name}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
    return {name: root / name for name in runs}


@pytest.mark.slow
def test_every_job_runs_and_a_failed_job_does_not_stop_the_sweep(sweeps) -> None:
    main = [_results(sweeps["main"] / str(job)) for job in range(4)]
    assert [(r["status"], r["method"], r["seed"]) for r in main] == [
        ("completed", "lora", 1),
        ("completed", "lora", 2),
        ("completed", "prefix", 1),
        ("completed", "prefix", 2),
    ]
    failed, completed = (_results(sweeps["extra"] / str(job)) for job in range(2))
    assert failed["status"] == "failed" and "overflows in fp16" in failed["error"]
    assert completed["status"] == "completed"
    refused_log = (sweeps["extra"] / "0" / "train.log").read_text(encoding="utf-8")
    assert "job refused: trainer.precision=16-mixed" in refused_log
    assert "Traceback" not in refused_log  # a refused config is the config's fault: one line


@pytest.mark.slow
def test_wandb_offline_run_is_grouped_named_and_tagged(sweeps) -> None:
    [run] = list(_wandb_run_records(sweeps["extra"] / "1"))
    assert run.run_group == "sweep_test"
    assert run.display_name == "lora r=8 prompt=none seed=3"
    assert list(run.tags) == [
        "smoke",
        "lora",
        "r=8",
        "prompt=none",
        "categories=news_r+minute",
        "seed=3",
    ]


@pytest.mark.slow
def test_report_on_a_real_sweep(sweeps, run_cli, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = run_cli("kosum.cli.report", str(sweeps["main"]), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(out / "report.md") in result.stdout
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for method in ("lora", "prefix"):
        assert f"| {method} | 1, 2 | " in markdown
    assert " ± " in markdown and "### Paired significance against lora" in markdown
    with (out / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {row["status"] for row in rows} == {"completed"}
    for name in ("rougeL_vs_params.png", "per_category.png", "val_rougeL_curves.png"):
        assert matplotlib.image.imread(out / name).size > 0

    both = tmp_path / "both"
    result = run_cli(
        "kosum.cli.report", str(sweeps["main"]), str(sweeps["extra"]), "--out", str(both)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    markdown = (both / "report.md").read_text(encoding="utf-8")
    assert "| lora | 1, 2, 3 | " in markdown
    failed_section = markdown.split("## Failed runs")[1]
    assert "extra/0" in failed_section and "overflows in fp16" in failed_section


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Deprecated API features detected")  # optuna 2 on SQLAlchemy 1.4
def test_optuna_study_resumes_from_sqlite(run_cli, tmp_path: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = [
        "hparams_search=smoke_optuna",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=resume",
        "trainer.max_epochs=1",
        "test=false",
        "peft.r=choice(3, 5)",  # a sweep override replaces that parameter's search space
    ]
    for session, n_trials in (("first", 2), ("second", 1)):
        result = run_cli(
            "kosum.cli.train",
            *common,
            f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweep.dir={tmp_path / session}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        if session == "first":
            first = optuna.load_study(study_name="resume", storage=storage).trials

    trials = optuna.load_study(study_name="resume", storage=storage).trials
    assert len(first) == 2 and len(trials) == 3
    assert [trial.params for trial in trials[:2]] == [trial.params for trial in first]
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    run_dirs = [tmp_path / "first" / "0", tmp_path / "first" / "1", tmp_path / "second" / "0"]
    assert [trial.value for trial in trials] == [
        _results(run_dir)["metrics"]["val_rougeL"] for run_dir in run_dirs
    ]
    assert {trial.params["peft.r"] for trial in trials} <= {3, 5}
    assert {_results(d)["config"]["peft"]["r"] for d in run_dirs} <= {3, 5}


@pytest.mark.parametrize(
    ("mode", "offline"),
    [("offline", True), ("dryrun", True), ("online", False), ("disabled", False)],
)
def test_wandb_mode_decides_offline(monkeypatch, mode: str, offline: bool) -> None:
    """`disabled` is not offline: an offline logger would turn it into a dryrun that writes
    files; left to wandb, a disabled run writes nothing."""
    monkeypatch.setenv("WANDB_MODE", mode)
    assert wandb_offline() is offline
