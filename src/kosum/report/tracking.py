"""W&B run labels: a run's name and tags come from its configuration, so the W&B UI can group,
filter and compare sweep runs (conf/logger/wandb.yaml instantiates `wandb_logger`).

Tags look like `lora`, `r=8`, `prompt=none`, `categories=news_r+minute`, `seed=1`; W&B limits a
tag to 64 characters, so a longer one (e.g. all ten AI-Hub categories) is shortened to the
number of items and a digest that still tells different sets apart.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger

from kosum.io import atomic_open
from kosum.report.labels import config_label, format_value, setting_label, short_name

MAX_TAG_LENGTH = 64
RUN_ID_FILE = "wandb_run_id"


def _fit_tag(key: str, value: Any) -> str:
    tag = setting_label(key, value)
    if len(tag) <= MAX_TAG_LENGTH:
        return tag
    digest = hashlib.sha1(format_value(value).encode()).hexdigest()[:8]
    size = len(value) if isinstance(value, (list, tuple)) else len(format_value(value))
    return f"{short_name(key)}={size} items #{digest}"[:MAX_TAG_LENGTH]


def run_tags(labels: Mapping[str, Any]) -> list[str]:
    """One tag per set label (None values are skipped), in the labels' order."""
    return [_fit_tag(key, value) for key, value in labels.items() if value is not None]


def run_name(labels: Mapping[str, Any]) -> str:
    """`lora r=8 prompt=none seed=1`: the labels without list-valued ones (categories)."""
    return config_label(
        (key, value) for key, value in labels.items() if not isinstance(value, (list, tuple))
    )


def run_id(save_dir: str | Path) -> str:
    """The W&B run id of the kosum run in `save_dir`: made on its first session and kept in
    `save_dir/wandb_run_id`, so a resumed run logs to the same W&B run, not a second one."""
    path = Path(save_dir) / RUN_ID_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    new_id = secrets.token_hex(4)  # W&B's own ids are 8 lowercase characters too
    with atomic_open(path) as handle:
        handle.write(new_id + "\n")
    return new_id


def wandb_logger(
    *,
    labels: Mapping[str, Any],
    save_dir: str | Path,
    tags: Sequence[str] = (),
    name: str | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """A Lightning `WandbLogger` named and tagged from `labels` (`name` overrides the name);
    `tags` (the config's own `tags`) come first; the run id is the run folder's (`run_id`), so
    the sessions of a resumed run are one W&B run. Other arguments go to `WandbLogger`."""
    return WandbLogger(
        name=name or run_name(labels),
        tags=[*tags, *run_tags(labels)],
        save_dir=str(save_dir),
        id=kwargs.pop("id", None) or run_id(save_dir),
        resume=kwargs.pop("resume", "allow"),
        **kwargs,
    )


def log_run_outputs(
    loggers: Sequence[Any], saved_folder: Path | None, record: Mapping[str, Any], rows: list[dict]
) -> None:
    """For each W&B logger: the test predictions as a W&B table (`test/predictions`) and the
    saved adapter (or model) folder as a `model` artifact whose metadata are the run's method,
    seed, trainable parameters and test metrics. Offline runs keep both for `wandb sync`."""
    import wandb

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        if rows:
            columns = ["id", "category", "prediction", "reference"]
            logger.log_table(
                key="test/predictions",
                columns=columns,
                data=[[r[c] for c in columns] for r in rows],
            )
        if saved_folder is not None and saved_folder.is_dir():
            artifact = wandb.Artifact(
                name=f"{record['method']}-{logger.experiment.id}",
                type="model",
                metadata={
                    "method": record["method"],
                    "seed": record["seed"],
                    "trainable_params": record.get("trainable_params"),
                    "metrics": dict(record.get("metrics", {})),
                },
            )
            artifact.add_dir(str(saved_folder))
            logger.experiment.log_artifact(artifact)
