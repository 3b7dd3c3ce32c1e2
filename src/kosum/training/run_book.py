"""The bookkeeping of one training run (`RunBook`), kept out of `run_training`'s steps.

From its start a run keeps time (across resumed sessions) and its own peak memory. Before it
loads data it writes `resolved_config.yaml` and a `running` results.json, so a run killed
before it ends is still listed by kosum-report, as unfinished. When it ends it writes the
completed record (metrics, costs, data, versions, hardware, config), the adapter's model card
and the test predictions, and hands the loggers the adapter and the predictions. Under DDP every
process keeps a book; only global rank 0 writes. `write_predictions` writes the same
predictions file for kosum-eval.
"""

from __future__ import annotations

import logging
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from kosum.data.datamodule import SummarizationDataModule
from kosum.io import atomic_open, write_jsonl
from kosum.methods.base import Method
from kosum.report.tracking import log_run_outputs
from kosum.run_folder import METRICS, PREDICTIONS, RESULTS, RUN_CONFIG
from kosum.training.budget import FittedBudget
from kosum.training.model_card import rouge_intervals, write_model_card
from kosum.training.module import SummarizationModule
from kosum.training.peak_memory import PeakMemory
from kosum.training.run_record import (
    composition,
    git_commit,
    hardware,
    library_versions,
    write_results,
)
from kosum.training.wall_clock import WallClock

log = logging.getLogger(__name__)


class RunBook:
    """One run's records. Created first thing: the wall clock and the peak memory count from
    then (a multirun's jobs share one process, so each resets the peak)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.wall_clock = WallClock(time.perf_counter())  # a Lightning callback: resumes count
        self.peak_memory = PeakMemory()
        self.cfg = cfg
        self.run_dir = Path(cfg.paths.output_dir)
        self.budget: FittedBudget | None = None
        self.resolved: dict[str, Any] = {}
        self.writes = True  # set by begin(): False on the other ranks of a DDP run
        self.commit: str | None = None
        self.composed: dict[str, Any] = {}
        self.counts: dict[str, Any] = {}
        self.peak_memory_mb: float | None = None
        self.peak_memory_kind = "unavailable"

    def settle(self, budget: FittedBudget | None) -> None:
        """The configuration is final (checked, its size knob set to the budget)."""
        self.budget = budget
        self.resolved = OmegaConf.to_container(self.cfg, resolve=True)

    def begin(self, trainer: L.Trainer, resumed: bool) -> None:
        """`resolved_config.yaml` (read back by kosum-eval and kosum-predict) and a `running`
        record, replaced when the run ends; a resumed run's earlier record is kept aside
        (resuming a finished run to train longer)."""
        self.writes = trainer.is_global_zero
        self.commit, self.composed = git_commit(), composition(self.cfg)  # again at the end
        if not self.writes:
            return
        with atomic_open(self.run_dir / RUN_CONFIG) as handle:
            handle.write(OmegaConf.to_yaml(self.cfg, resolve=True))
        if resumed:
            keep_aside(self.run_dir / RESULTS)
        write_results(
            self.run_dir,
            {
                "status": "running",
                "method": self.cfg.method,
                "seed": self.cfg.seed,
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "git_commit": self.commit,
                "trainable_budget": self.budget and self.budget.record(),
                "config": self.resolved,
                "composition": self.composed,
            },
        )

    def log_hyperparams(self, loggers: list[Any], counts: dict[str, Any], resumed: bool) -> None:
        """The resolved config and the parameter counts, to every logger. Lightning's CSV
        logger deletes an interrupted run's log when it writes its first line: a resume keeps
        that log aside first."""
        self.counts = counts
        log.info("method %s: %s", self.cfg.method, counts)
        if resumed and self.writes:
            keep_aside(self.run_dir / METRICS)
        with warnings.catch_warnings():
            # The CSV logger warns that "previous log files will be deleted" whenever its folder
            # is not empty, and the run folder always holds .hydra/: only an old metrics.csv
            # would go, and a resume has just kept it aside.
            warnings.filterwarnings("ignore", message=r"Experiment logs directory .* is not empty")
            for logger in loggers:
                logger.log_hyperparams({**self.resolved, **counts})

    def log_peak_memory(self, trainer: L.Trainer, loggers: list[Any]) -> None:
        """The run's peak memory once it has trained and tested, logged once beside the
        per-step and per-validation metrics."""
        self.peak_memory_mb, self.peak_memory_kind = self.peak_memory.mb(
            trainer.strategy.root_device
        )
        for logger in loggers:
            logger.log_metrics(
                {"peak_memory_mb": self.peak_memory_mb or 0.0}, step=trainer.global_step
            )
            logger.save()

    def close(
        self,
        trainer: L.Trainer,
        module: SummarizationModule,
        datamodule: SummarizationDataModule,
        method: Method,
        best_val: dict[str, float],
        loggers: list[Any],
    ) -> dict[str, Any]:
        """The completed record; rank 0 writes it with the test predictions and (for a trained
        method) the model card, and gives the loggers the adapter and the predictions."""
        trained = method.trains
        metrics = dict(module.last_eval_metrics.get("test", {}))
        metrics.update({f"val_{k}": v for k, v in best_val.items()})
        metrics.update({f"start_val_{k}": v for k, v in module.start_val_metrics.items()})
        writes_predictions = self.writes and "test" in module.eval_outputs
        rows = prediction_rows(module, datamodule, "test") if writes_predictions else []
        if writes_predictions:
            write_jsonl(self.run_dir / PREDICTIONS, rows)
        record = {
            "status": "completed",
            "method": self.cfg.method,
            "seed": self.cfg.seed,
            "metrics": metrics,
            **self.counts,
            "trainable_budget": self.budget and self.budget.record(),
            "wall_time_s": self.wall_clock.elapsed_s(),
            "epochs": trainer.current_epoch if trained else 0,  # fewer after early stopping
            **module.training_speed.record(),
            "peak_memory_mb": self.peak_memory_mb,
            "peak_memory_kind": self.peak_memory_kind,
            "data": datamodule.data_summary,
            "versions": library_versions(),
            "hardware": hardware(),
            "git_commit": self.commit,
            "run_dir": str(self.run_dir),
            "config": self.resolved,
            "composition": self.composed,
        }
        if self.writes:
            saved = self.run_dir / method.saved_folder if trained else None
            if saved is not None:  # replaces PEFT's empty template
                write_model_card(saved, record, intervals_of_test(module))
            write_results(self.run_dir, record)
            log_run_outputs(loggers, saved, record, rows)
        return record


def keep_aside(path: Path) -> None:
    """Rename `path` to the first free `<stem>.before-resume-<n><suffix>`, if it exists."""
    if not path.exists():
        return
    n = 1
    while (target := path.with_name(f"{path.stem}.before-resume-{n}{path.suffix}")).exists():
        n += 1
    path.rename(target)


def intervals_of_test(module: SummarizationModule) -> dict[str, list[float]]:
    """95% bootstrap intervals of the test ROUGE over the test documents ({} without a test)."""
    outputs = module.eval_outputs.get("test")
    if outputs is None:
        return {}
    references = module.trainer.datamodule.splits["test"].references
    indices, predictions = outputs.sorted_by_index()
    return rouge_intervals(predictions, [references[i] for i in indices])


def prediction_rows(
    module: SummarizationModule, datamodule: SummarizationDataModule, split: str
) -> list[dict[str, Any]]:
    """One row per evaluated example, in dataset order: id, prediction, reference, category."""
    dataset = datamodule.splits[split]
    indices, predictions = module.eval_outputs[split].sorted_by_index()
    return [
        {
            "id": dataset.ids[i],
            "prediction": prediction,
            "reference": dataset.references[i],
            "category": dataset.categories[i],
        }
        for i, prediction in zip(indices, predictions, strict=True)
    ]


def write_predictions(
    run_dir: Path, module: SummarizationModule, datamodule: SummarizationDataModule, split: str
) -> None:
    """`predictions.jsonl`: one row per evaluated example, in dataset order."""
    write_jsonl(run_dir / PREDICTIONS, prediction_rows(module, datamodule, split))
