"""`kosum-train`: train and test one configuration (or a sweep with --multirun).

    kosum-train experiment=smoke
    kosum-train --multirun peft=lora,prefix seed=1,2,3
    kosum-train hparams_search=smoke_optuna

The return value is what a sweeper optimises: the `optimized_metric` of the run's results.json
(see `objective`). In a multirun a failing job is recorded (results.json with status=failed),
logged and returns None, so the other jobs of the sweep still run; Optuna counts it as a failed
trial. A single run that fails exits non-zero.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig

from kosum.config import config_dir, register_resolvers
from kosum.errors import user_error
from kosum.training.pipeline import run_training
from kosum.training.run_record import failure_note, record_failures

log = logging.getLogger(__name__)

register_resolvers()


def objective(metrics: Mapping[str, float], optimized_metric: str | Sequence[str]) -> float | None:
    """The metric named by `optimized_metric`, or the mean of several names; None (logged) when
    one is missing or not finite (a run without a best checkpoint has no `val_rougeL`; names no
    run records are refused earlier, by `check_config`)."""
    names = [optimized_metric] if isinstance(optimized_metric, str) else list(optimized_metric)
    values = [metrics.get(name) for name in names]
    if not names or any(value is None or not math.isfinite(value) for value in values):
        log.warning("optimized_metric=%s: not all found in %s; returning None", names, metrics)
        return None
    return sum(values) / len(values)


@record_failures
def _train(cfg: DictConfig) -> float | None:
    record = run_training(cfg)
    optimized = cfg.get("optimized_metric", "val_rougeL")
    names = list(optimized) if isinstance(optimized, ListConfig) else str(optimized)
    return objective(record["metrics"], names)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    register_resolvers()  # again in parallel launchers' worker processes (joblib, submitit)
    try:
        return _train(cfg)
    except Exception as error:
        where = failure_note(cfg.paths.output_dir)
        cause = user_error(error)  # a refused config, missing file or bad data: no traceback
        if not _in_multirun():
            if cause is None:
                raise
            print(f"kosum-train: error: {cause} ({where})", file=sys.stderr)
            sys.exit(2)
        if cause is not None:
            log.error("job refused: %s (%s); the sweep goes on", cause, where)
        else:
            log.exception("job failed (%s); the sweep goes on", where)
        return None


if __name__ == "__main__":
    main()
