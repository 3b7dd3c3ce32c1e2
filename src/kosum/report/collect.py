"""Find runs under sweep directories and flatten each into settings, metrics and costs.

A run is any directory holding a `results.json` (completed, failed or still `running`), found
recursively, so a Hydra multirun folder, an Optuna sweep, W&B agent runs or a folder of copied
runs all work.
A run's settings are what a comparison can vary over:

- the Hydra group choices it was composed from (`model`, `data`, `prompt`, ...);
- a few config values always worth a column (`peft.r`, `data.categories`, `optim.lr`, ...);
- every key it overrode on the command line or from a sweeper;
- every other config key whose value differs between runs that agree on all of the above (a
  YAML default edited between two sweeps), compared in the config as Hydra composed it (before
  interpolation, so a value set to `${seed}` is the same in every seed's run).

Choices, overrides and the composed config come from results.json's `composition`, which
kosum-train records because a later command in the same folder replaces `.hydra/`; records
without one are read from `.hydra/hydra.yaml`, `overrides.yaml` and `config.yaml`.

Config values come from results.json's resolved `config`; a failed run has none, so its Hydra
`.hydra/config.yaml` is read instead (values that need Hydra's runtime to resolve are left out).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from kosum.io import atomic_open
from kosum.report.labels import format_value
from kosum.run_folder import RESULTS, drop_older_layout

log = logging.getLogger(__name__)

METRIC_KEYS: tuple[str, ...] = (
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "gen_len",
    "loss",
    "val_rougeL",
    "start_val_rougeL",
)
COST_KEYS: tuple[str, ...] = (
    "trainable_params",
    "total_params",
    "trainable_fraction",
    "wall_time_s",
    "time_per_step_s",
    "tokens_per_s",
    "peak_memory_mb",
)
# Hydra groups whose chosen option is a setting (`peft` is the run's method).
CHOICE_GROUPS: tuple[str, ...] = (
    "experiment",
    "model",
    "data",
    "prompt",
    "generation",
    "val_generation",
    "optim",
    "scheduler",
    "trainer",
    "debug",
)
# Config values recorded for every run, varied or not.
CONFIG_KEYS: tuple[str, ...] = (
    "peft.r",
    "peft.num_virtual_tokens",
    "data.categories",
    "data.test_categories",
    "optim.lr",
    "trainer.max_epochs",
)
# Config leaves (last key) that change where or how fast things run, not what is measured.
UNMEASURED_LEAVES = frozenset(
    {"cache_dir", "num_workers", "log_every_n_steps", "enable_progress_bar"}
)
# Overridden keys that do not change what is measured (where files go, how runs are named,
# logged, launched, searched or resumed: a resumed run ends as the uninterrupted one,
# tests/test_resume.py); seed and method are a run's own fields.
IGNORED_OVERRIDES: tuple[str, ...] = (
    "merge",  # also exports the merged model; the adapter measured is the same
    "validate_before_training",  # also validates the untrained model; training is the same
    "paths",
    "hydra",
    "logger",
    "callbacks",
    "task_name",
    "tags",
    "optimized_metric",
    "resume",
    "ckpt_path",
    "seed",
)


@dataclass(frozen=True)
class Run:
    """One run directory, flattened. Settings hold hashable values (lists become tuples)."""

    path: Path
    status: str
    method: str | None
    seed: int | None
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    costs: dict[str, int | float] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    error: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"


def _natural_key(path: Path) -> tuple[tuple[int, int | str], ...]:
    """Sort `10` after `9` in run folders named by job number."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", path.as_posix())
        if part
    )


def find_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Directories holding a results.json under (or at) each root, in natural order, unique.
    Linked folders are followed (a sweep folder of links to runs kept elsewhere), each real
    folder once."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"no such sweep directory: {root}")
        visited: set[Path] = set()
        for folder, subfolders, files in os.walk(root, followlinks=True):
            real = Path(folder).resolve()
            if real in visited:  # a link back up the tree, or two links to one folder
                subfolders.clear()
                continue
            visited.add(real)
            if RESULTS in files:
                found.add(real)
    return sorted(found, key=_natural_key)


def _hashable(value: Any) -> Any:
    """`value` usable as a set member / dict key: lists as tuples, mappings as sorted items."""
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(key), _hashable(item)) for key, item in value.items()))
    return value


def _config_source(run_dir: Path, record: Mapping[str, Any]) -> DictConfig:
    if "config" in record:
        return OmegaConf.create(record["config"])
    hydra_config = run_dir / ".hydra" / "config.yaml"
    return OmegaConf.load(hydra_config) if hydra_config.exists() else OmegaConf.create()


def _config_value(config: DictConfig, key: str) -> Any:
    value = OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


@dataclass(frozen=True)
class Composition:
    """How Hydra composed a run: every group's chosen option (`peft`: `lora`, ...), the
    overrides it was given, and its config before interpolation (None when unknown)."""

    choices: dict[str, Any]
    overrides: list[str]
    config: dict[str, Any] | None


def _composition(run_dir: Path, record: Mapping[str, Any]) -> Composition:
    """From results.json, where kosum-train records it (a later command in the same folder,
    even a refused one, replaces `.hydra/`), else from `.hydra/` (older records)."""
    recorded = record.get("composition")
    if isinstance(recorded, dict) and recorded:
        return Composition(
            dict(recorded.get("choices") or {}),
            list(recorded.get("overrides") or []),
            recorded.get("config"),
        )
    hydra = run_dir / ".hydra"
    choices: Any = {}
    if (hydra / "hydra.yaml").exists():
        choices = OmegaConf.select(
            OmegaConf.load(hydra / "hydra.yaml"), "hydra.runtime.choices", default={}
        )
    overrides = (  # as given: `x=${.y}` resolves only inside the job's config
        OmegaConf.to_container(OmegaConf.load(hydra / "overrides.yaml"), resolve=False)
        if (hydra / "overrides.yaml").exists()
        else []
    )
    config = None
    if (hydra / "config.yaml").exists():
        config = OmegaConf.to_container(OmegaConf.load(hydra / "config.yaml"), resolve=False)
    return Composition(dict(choices), overrides, config)


def _overridden_values(composition: Composition) -> dict[str, Any]:
    """Config keys the run overrode (group choices aside), with their values."""
    return {
        override.key_or_group: override.value()
        for override in OverridesParser.create().parse_overrides(composition.overrides)
        if not override.is_delete()
        and override.key_or_group not in composition.choices
        and override.key_or_group.split(".")[0] not in IGNORED_OVERRIDES
    }


def _read_record(run_dir: Path) -> dict[str, Any]:
    """The run's `results.json`, which must be a JSON object."""
    try:
        record = json.loads((run_dir / RESULTS).read_text(encoding="utf-8"))
    except ValueError as error:  # invalid JSON or UTF-8: name the file
        raise ValueError(f"{RESULTS}: {error}") from None
    if not isinstance(record, dict):
        raise TypeError(f"{RESULTS}: not a JSON object")
    return record


def _load_run(
    run_dir: Path,
    record: dict[str, Any],
    composition: Composition,
    overridden_keys: Iterable[str],
    own: dict[str, Any],
) -> Run:
    """One run from its `record`; `overridden_keys` (overridden in any run) are read from its
    config unless it overrode them itself (`own`, its `_overridden_values`), so runs that kept
    the default still have the setting."""
    config = _config_source(run_dir, record)
    choices = composition.choices
    settings: dict[str, Any] = {
        **{group: choices[group] for group in CHOICE_GROUPS if choices.get(group) is not None},
        **{key: _config_value(config, key) for key in (*CONFIG_KEYS, *overridden_keys)},
        **own,
    }
    metrics = record.get("metrics") or {}
    return Run(
        path=run_dir,
        status=record.get("status", "unknown"),
        method=record.get("method"),
        seed=record.get("seed"),
        settings={key: _hashable(value) for key, value in settings.items()},
        metrics={key: float(value) for key, value in metrics.items() if value is not None},
        costs={key: record[key] for key in COST_KEYS if record.get(key) is not None},
        overrides=tuple(composition.overrides),
        error=None if record.get("error") is None else str(record["error"]),
    )


# What a damaged run folder raises while it is read: invalid JSON/UTF-8 (ValueError), YAML,
# OmegaConf errors, and a record of the wrong shape (KeyError/TypeError/AttributeError).
UNREADABLE = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    yaml.YAMLError,
    OmegaConfBaseException,
    HydraException,  # an override line that no longer parses
)


@dataclass(frozen=True)
class Read:
    """What was read of one run folder: its record, composition and own overridden values."""

    record: dict[str, Any]
    composition: Composition
    own: dict[str, Any]


def load_runs(roots: Iterable[str | Path]) -> list[Run]:
    """Every run under `roots` (see `find_run_dirs`), flattened. A run whose files cannot be
    read (a cut-short `results.json`, a damaged `.hydra/` file) is kept with status
    `unreadable` and the reason, so the report lists it with the failed runs."""
    read: dict[Path, Read] = {}
    composed: dict[Path, dict[str, Any]] = {}  # measured leaves of the composed config
    errors: dict[Path, Exception] = {}
    for path in find_run_dirs(roots):
        try:
            record = _read_record(path)
            if "evaluated_run" in record:  # kosum-eval's record: an evaluation, not a run
                log.info("left out: %s is a kosum-eval output of %s", path, record["evaluated_run"])
                continue
            composition = _composition(path, record)
            own = _overridden_values(composition)
            leaves = None if composition.config is None else _measured(composition.config)
        except UNREADABLE as error:
            errors[path] = error
            continue
        read[path] = Read(record, composition, own)
        if leaves is not None:
            composed[path] = leaves
    overridden = sorted({key for entry in read.values() for key in entry.own})
    runs = [
        _load_or_mark(path, overridden, read.get(path), errors.get(path))
        for path in sorted([*read, *errors], key=_natural_key)
    ]
    runs = _with_hidden_differences(
        runs, composed, {path: entry.record for path, entry in read.items()}
    )
    log.info("found %d runs (%d completed)", len(runs), sum(run.completed for run in runs))
    return runs


def _leaves(config: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a nested mapping; lists are leaves."""
    if isinstance(config, Mapping) and config:
        for key, value in config.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.removesuffix("."), config


def _measured(config: dict[str, Any]) -> dict[str, Any]:
    """A composed config's leaves as hashable values, less the keys that do not change what is
    measured. Compared before interpolation: a value set to `${seed}` reads the same in
    every seed's run, where the resolved config in results.json differs."""
    config = copy.deepcopy(config)
    drop_older_layout(config)  # a run from before 2026-12-08 is not another configuration
    return {
        key: _hashable(value)
        for key, value in _leaves(config)
        if key.split(".")[0] not in IGNORED_OVERRIDES
        and key.rsplit(".", 1)[-1] not in UNMEASURED_LEAVES
    }


_MISSING = object()  # a key one run's config lacks


def _with_hidden_differences(
    runs: list[Run], composed: Mapping[Path, dict[str, Any]], records: Mapping[Path, dict]
) -> list[Run]:
    """`runs` with every composed-config key that differs between completed runs of equal
    method and settings added to all runs' settings: otherwise two sweeps that differ only in
    an edited YAML default would be averaged as one configuration (and their seeds merged).
    A run without `.hydra/config.yaml` takes these keys' values from its resolved config."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        if run.completed and run.path in composed:
            groups[(run.method, *sorted(run.settings.items()))].append(composed[run.path])
    hidden = sorted(
        {
            key
            for members in groups.values()
            for key in set().union(*members)
            if len({member.get(key, _MISSING) for member in members}) > 1
        }
    )
    if not hidden:
        return runs
    log.warning(
        "runs with the same overrides differ in %s (YAML defaults edited between runs?): "
        "these are reported as settings",
        ", ".join(hidden),
    )

    def values(run: Run) -> dict[str, Any]:
        if run.path in composed:
            return {key: composed[run.path].get(key) for key in hidden}
        if run.path in records:
            config = _config_source(run.path, records[run.path])
            return {key: _hashable(_config_value(config, key)) for key in hidden}
        return {}  # unreadable

    return [replace(run, settings={**values(run), **run.settings}) for run in runs]


def _load_or_mark(
    path: Path, overridden: list[str], read: Read | None, error: Exception | None
) -> Run:
    """`_load_run`, or an `unreadable` run naming what was wrong with its files."""
    if read is not None:
        try:
            return _load_run(path, read.record, read.composition, overridden, read.own)
        except UNREADABLE as caught:
            error = caught
    reason = f"{path}: {type(error).__name__}: {error}"
    log.warning("unreadable run %s", reason)
    return Run(path=path, status="unreadable", method=None, seed=None, error=reason)


def setting_keys(runs: Iterable[Run]) -> list[str]:
    """All setting keys of `runs`: group choices, then the standard config keys, then others."""
    keys = {key for run in runs for key in run.settings}
    standard = [key for key in (*CHOICE_GROUPS, *CONFIG_KEYS) if key in keys]
    return standard + sorted(keys - set(standard))


def write_runs_csv(
    runs: list[Run], path: str | Path, placement: Mapping[Path, tuple[str, str]] | None = None
) -> Path:
    """`results.csv`: one row per run (failed ones too), flat columns for pandas. `placement`
    maps each run counted in the report's statistics to its comparison title and
    configuration label (`kosum.report.aggregate.placement`): the `comparison`,
    `configuration` and `counted` columns let a notebook group rows exactly as the report."""
    placement = placement or {}

    def placed(run: Run) -> dict[str, str]:
        comparison, configuration = placement.get(run.path, ("", ""))
        return {"comparison": comparison, "configuration": configuration}

    settings = setting_keys(runs)
    columns = [
        "run_dir",
        "status",
        "method",
        "seed",
        "comparison",
        "configuration",
        "counted",
        *settings,
        *METRIC_KEYS,
        *COST_KEYS,
        "error",
    ]
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for run in runs:
            writer.writerow(
                {
                    "run_dir": str(run.path),
                    "status": run.status,
                    "method": run.method,
                    "seed": run.seed,
                    **placed(run),
                    "counted": run.path in placement,
                    **{
                        key: ""
                        if run.settings.get(key) is None
                        else format_value(run.settings[key])
                        for key in settings
                    },
                    **{key: run.metrics.get(key, "") for key in METRIC_KEYS},
                    **{key: run.costs.get(key, "") for key in COST_KEYS},
                    "error": run.error or "",
                }
            )
    return Path(path)
