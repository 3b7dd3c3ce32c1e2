"""`kosum-eval`: the training run's evaluation on a saved run/adapter and a data set, no training.

kosum-eval run=outputs/train/runs/<time>
kosum-eval run=<dir> data=table data.path=test.csv generation=seed split=all

A missing run or data set, or an impossible choice, exits with status 2 and one line on stderr;
results.json records the failure with its traceback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kosum.config import config_dir, register_resolvers
from kosum.errors import InputError, user_error
from kosum.models.trained import kosum_node, load_trained, run_config
from kosum.run_folder import RUN_CONFIG
from kosum.training.config_checks import build_trainer, check_generate_arguments
from kosum.training.module import SummarizationModule
from kosum.training.pipeline import build_datamodule
from kosum.training.run_book import write_predictions
from kosum.training.run_record import (
    failure_note,
    git_commit,
    hardware,
    library_versions,
    record_failures,
    write_results,
)

register_resolvers()
OVERRIDABLE = ("data", "prompt", "generation")
# test/val: that split of the data, as training made it; all: every example of the data.
SPLITS = ("test", "val", "all")
DEFAULT_SEED = 42  # without a run's seed
LENGTHS = ("max_source_length", "max_target_length")


def evaluation_config(cfg: DictConfig) -> DictConfig:
    """`cfg` with data/prompt/generation taken from the trained run unless chosen here (for an
    adapter/model folder, from the run directory that holds it)."""
    if OmegaConf.is_missing(cfg, "run"):
        raise InputError("run=<run dir, or its adapter/ or model/ folder> is required")
    run = Path(cfg.run)
    trained = run_config(run)  # the run's, also for an adapter/ or model/ folder inside it
    if cfg.get("seed") is None:
        seed = trained.get("seed") if trained is not None else None
        # the run's, so sampling draws as the run's test did
        cfg.seed = seed if isinstance(seed, int) else DEFAULT_SEED
    merged = OmegaConf.to_container(cfg, resolve=True)
    if trained is not None:
        if merged.get("data") is not None:
            _keep_the_runs_lengths(merged["data"], trained)
        for key in OVERRIDABLE:
            if merged.get(key) is None and trained.get(key) is not None:
                merged[key] = kosum_node(trained, key, f"{run}: {RUN_CONFIG}")
    missing = [key for key in OVERRIDABLE if merged.get(key) is None]
    if missing:
        raise InputError(
            f"{run} has no {RUN_CONFIG} to take {missing} from: choose them on the "
            f"command line, e.g. data=table data.path=test.csv prompt=none generation=greedy"
        )
    if merged["split"] not in SPLITS:
        raise InputError(f"split={merged['split']!r}: choose one of {', '.join(SPLITS)}")
    if merged["split"] == "all":  # every example of the data set, none held out for training
        merged["data"]["whole_source_as_test"] = True
    check_generate_arguments(merged["generation"].get("generate") or {})
    return OmegaConf.create(merged)


def _keep_the_runs_lengths(data: dict[str, Any], trained: DictConfig) -> None:
    """Another data set (`data=table ...`) is truncated as the run truncated its own (not at
    the data config's default) unless `data.max_source_length=`/`max_target_length=` is given."""
    run_data = OmegaConf.to_container(trained, resolve=False).get("data") or {}
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    given_keys = {override.lstrip("+").split("=", 1)[0] for override in overrides}
    for key in LENGTHS:
        value = run_data.get(key)
        if isinstance(value, int) and f"data.{key}" not in given_keys:
            data[key] = value


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    started = time.perf_counter()
    cfg = evaluation_config(cfg)
    stage = "val" if cfg.split == "val" else "test"  # split=all evaluates as the test stage
    L.seed_everything(cfg.seed, workers=True)
    model, tokenizer = load_trained(cfg.run, cfg.base_model, cfg.allow_pickle)
    datamodule = build_datamodule(cfg)
    datamodule.set_tokenizer(tokenizer)
    datamodule.setup()
    module = SummarizationModule(
        model,
        tokenizer,
        optimizer=None,
        scheduler=None,
        generation=instantiate(cfg.generation),
        seed=cfg.seed,
    )
    trainer = build_trainer(cfg.trainer, logger=False, enable_checkpointing=False)
    if stage == "test":
        trainer.test(module, datamodule=datamodule)
    else:
        trainer.validate(module, datamodule=datamodule)
    out_dir = Path(cfg.paths.output_dir)
    write_predictions(out_dir, module, datamodule, stage)
    record = {
        "status": "completed",
        "evaluated_run": str(Path(cfg.run).resolve()),
        "split": cfg.split,
        "seed": cfg.seed,
        "metrics": module.last_eval_metrics[stage],
        "wall_time_s": time.perf_counter() - started,
        "data": datamodule.data_summary,
        "versions": library_versions(),
        "hardware": hardware(),
        "git_commit": git_commit(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_results(out_dir, record)
    return record


@record_failures
def _evaluate(cfg: DictConfig) -> Any:
    return run_evaluation(cfg)["metrics"].get("rougeL")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def main(cfg: DictConfig) -> Any:
    try:
        return _evaluate(cfg)
    except Exception as error:
        cause = user_error(error)
        if cause is None:
            raise
        print(f"kosum-eval: error: {cause} ({failure_note(cfg.paths.output_dir)})", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
