"""What a checkpoint was trained with, so that a resume cannot silently continue another run.

Lightning restores whatever matches by name and PEFT loading is non-strict: resuming with other
LoRA target modules, another batch size or seed would load part of the state, skip batches of
another order, and finish with `status: completed`. Each checkpoint therefore records the
settings that define the training (`identity`); a resume compares them with its own config
before any data is loaded and refuses, naming each difference. Locations (`data.root`,
`data.path`, cache folders), worker counts, logging and `trainer.max_epochs`/`max_steps`/
`limit_train_batches` (training longer is a reason to resume) may change; the latter with a
warning, since the learning-rate schedule is laid out over the new length (and another
`limit_train_batches` moves where epochs end).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from safetensors import safe_open

from kosum.run_folder import drop_older_layout
from kosum.training.checkpoint_io import META_KEY
from kosum.training.config_checks import ConfigError

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "kosum_run_identity"
IDENTITY_NODES = (
    "model",
    "peft",
    "data",
    "prompt",
    "optim",
    "scheduler",
    "seed",
    "label_smoothing",
)
TRAINER_KEYS = ("precision", "accumulate_grad_batches", "gradient_clip_val")
# May change on a resume, with a warning.
LENGTH_KEY = "training_length"
LENGTH_TRAINER_KEYS = ("max_epochs", "max_steps", "limit_train_batches")
# Where things are, or how fast they load: not what is trained (at any depth).
FREE_KEYS = {
    "root",
    "path",
    "cache_dir",
    "num_workers",
    "eval_batch_size",
    "tokenizer_name_or_path",
}


def identity(resolved: dict[str, Any]) -> dict[str, Any]:
    """The settings of a run's resolved config (`OmegaConf.to_container(cfg, resolve=True)`)
    that a resumed run must share with its checkpoint."""
    found = {key: resolved.get(key) for key in IDENTITY_NODES}
    trainer = resolved.get("trainer") or {}
    found["trainer"] = {key: trainer.get(key) for key in TRAINER_KEYS}
    found[LENGTH_KEY] = {f"trainer.{key}": trainer.get(key) for key in LENGTH_TRAINER_KEYS}
    return _without_free_keys(found)


def _without_free_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_free_keys(v) for k, v in value.items() if k not in FREE_KEYS}
    return value


def checkpoint_identity(path: str | Path) -> dict[str, Any] | None:
    """The identity a kosum checkpoint recorded (None for checkpoints without one), read from
    the safetensors header only: no tensor is loaded."""
    with safe_open(str(path), framework="pt") as reader:
        metadata = reader.metadata() or {}
    skeleton = json.loads(metadata.get(META_KEY, "{}"))
    return skeleton.get(CHECKPOINT_KEY)


def differences(saved: Any, current: Any, where: str = "") -> list[str]:
    """`key: saved → current` for every leaf that differs."""
    if isinstance(saved, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(saved) | set(current), key=str):
            path = f"{where}.{key}" if where else str(key)
            found += differences(saved.get(key), current.get(key), path)
        return found
    return [] if saved == current else [f"{where}: {saved!r} → {current!r}"]


def check_resume(checkpoint: str | Path, current: dict[str, Any]) -> None:
    """Refuse to resume `checkpoint` with settings (`identity`) that train something else."""
    saved = checkpoint_identity(checkpoint)
    if saved is None:
        log.warning("%s records no training settings (an older kosum): not compared", checkpoint)
        return
    drop_older_layout(saved)  # the free keys were never saved, but an older layout was
    saved_length, current_length = saved.get(LENGTH_KEY), current.get(LENGTH_KEY)
    longer = differences(saved_length, current_length) if saved_length is not None else []
    if longer:
        log.warning(
            "resuming %s with %s: the learning-rate schedule is laid out over the new length, "
            "so a decaying rate jumps at the resume and the run matches no uninterrupted one",
            checkpoint,
            "; ".join(longer),
        )
    changed = differences(
        {k: v for k, v in saved.items() if k != LENGTH_KEY},
        {k: v for k, v in current.items() if k != LENGTH_KEY},
    )
    if changed:
        raise ConfigError(
            f"resuming {checkpoint} with other training settings than it was saved with "
            f"({len(changed)}): {'; '.join(changed[:8])}. Resume with the run's own settings, "
            "or start a new run (another hydra.run.dir)"
        )
