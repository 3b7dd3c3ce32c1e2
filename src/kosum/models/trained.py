"""Reload what a training run saved: base model + adapter (or full weights) + tokenizer.

A run directory holds `adapter/` (PEFT `save_pretrained`, safetensors) or `model/` (full
fine-tuning), the tokenizer beside it, and `base_model/` when the base was random-init (so it
can be rebuilt bit for bit). Pretrained bases are reloaded by the name or path the run used. A
zero-shot run (`peft=none`) is its base model.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from kosum.config import config_dir
from kosum.errors import InputError
from kosum.methods.base import Method
from kosum.methods.factory import (
    adapter_base,
    is_adapter_folder,
    load_adapter,
)
from kosum.models.backbone import ModelSpec, load_model, load_pretrained, refuse_pickled
from kosum.run_folder import (
    ADAPTER,
    BASE_MODEL,
    FULL_MODEL,
    RUN_CONFIG,
    TOKENIZER,
    drop_older_layout,
)
from kosum.training.run_record import recorded_status

log = logging.getLogger(__name__)


def load_trained(
    run_or_adapter: str | Path, base_name_or_path: str | None = None, allow_pickle: bool = False
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Load a run directory, or an adapter/model folder directly, ready for generation.

    `base_name_or_path` overrides the base model recorded in the adapter config. Weights that
    exist only as pickles are refused unless `allow_pickle` (the caller's choice: a run
    folder's own config never allows them).
    """
    path = Path(run_or_adapter)
    for candidate in (path / ADAPTER, path / FULL_MODEL, path):
        if is_adapter_folder(candidate):
            refuse_pickled(candidate, allow_pickle)
            model = _load_adapter(candidate, base_name_or_path, allow_pickle)
            return model, AutoTokenizer.from_pretrained(candidate)
        if (candidate / "config.json").exists():
            return _load_full_model(candidate, allow_pickle)
    zero_shot = _zero_shot_base(path, allow_pickle)
    if zero_shot is not None:
        return zero_shot
    raise FileNotFoundError(
        f"{path} holds no trained model: expected an adapter in {ADAPTER}/ "
        f"(adapter_config.json or kosum_adapter.json), {FULL_MODEL}/config.json, or an "
        "adapter/model folder"
    )


def _load_full_model(
    folder: Path, allow_pickle: bool
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A whole model saved with `save_pretrained` (weights, config, tokenizer) in `folder`."""
    model = load_pretrained(str(folder), allow_pickle=allow_pickle)
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def run_config(run: str | Path) -> DictConfig | None:
    """The training run's resolved config, for a run dir or an adapter/model folder inside one
    (None when it has none); a `run` that does not exist is an `InputError` naming it."""
    path = Path(run)
    if not path.exists():
        raise InputError(f"run={run}: no such run directory or adapter/model folder")
    for candidate in (path / RUN_CONFIG, path.parent / RUN_CONFIG):
        if candidate.is_file():
            _warn_if_unfinished(candidate.parent)
            config = OmegaConf.load(candidate)
            drop_older_layout(config)  # its data.loader has a target no conf/data/ file has
            return config
    return None


def _warn_if_unfinished(run_dir: Path) -> None:
    """A run that did not complete (killed, failed, or still training, e.g. resumed to train
    longer) may hold weights of an earlier session beside a config already rewritten."""
    status = recorded_status(run_dir)
    if status not in (None, "completed"):
        log.warning(
            "%s: results.json says status %r, not completed: its saved weights may be from an "
            "earlier session or missing",
            run_dir,
            status,
        )


def kosum_node(config: DictConfig, key: str, where: str) -> Any:
    """`config[key]` (a run folder's config) as plain data, if it can only build what kosum's own
    configs build. A run folder may come from someone else: building objects from its config
    must not call arbitrary code (a `torch.load` of a pickle beside it, say). So every
    `_target_` must be one that kosum's own configs of that group (`conf/<key>/`) use (a prefix
    check is not enough: `kosum.config.os.system` resolves to `os.system`), and no value may
    hold an interpolation (`resolved_config.yaml` is written resolved; `${...}` could
    reach other nodes or `oc.decode` a target in). The result is detached from the run's config."""
    plain = OmegaConf.to_container(config, resolve=False).get(key)  # read, never resolved
    allowed = _config_targets(key)
    for path, name, value in _items({key: plain}, ""):
        if isinstance(value, str) and "${" in value:
            raise InputError(
                f"{where}: {path} holds an interpolation ({value!r}); a run's resolved config "
                "has none, and one from a run folder is not followed"
            )
        if name == "_target_" and value not in allowed:
            raise InputError(
                f"{where}: {path} = {value!r} is not one of kosum's conf/{key}/ classes; a run "
                "folder's config is not trusted to build anything else"
            )
    return plain


def _items(node: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(path, key, value) of every entry under `node`, depth first."""
    entries = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in entries:
        where = f"{path}.{key}" if path else str(key)
        yield where, key, value
        if isinstance(value, dict | list):
            yield from _items(value, where)


@functools.cache
def _config_targets(group: str) -> frozenset[str]:
    """The `_target_`s of kosum's own configs of one group (`conf/<group>/*.yaml`)."""
    targets = set()
    for path in (Path(config_dir()) / group).glob("*.yaml"):
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        targets |= {v for _, k, v in _items(content, "") if k == "_target_"}
    return frozenset(targets)


def _trains(config: DictConfig) -> bool:
    """Whether a run folder's method trains, from its `peft._target_` class alone (nothing is
    built); a target that is not one of kosum's method configs counts as training."""
    target = OmegaConf.select(config, "peft._target_")
    if target not in _config_targets("peft"):
        return True
    method = get_class(target)
    return not issubclass(method, Method) or method.trains


def _zero_shot_base(
    run_dir: Path, allow_pickle: bool
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase] | None:
    """A zero-shot run (`peft=none`) saves no weights: its base model, as the run loaded it
    (the saved random-init `base_model/`, else the recorded `model` config). None for any
    other run: a trained run that lost its weights must not pass for its untrained base."""
    config_file = run_dir / RUN_CONFIG
    if not config_file.is_file():
        return None
    config = OmegaConf.load(config_file)
    if _trains(config):
        return None
    saved_base = run_dir / BASE_MODEL
    if (saved_base / "config.json").exists():
        return _load_full_model(saved_base, allow_pickle)
    spec: ModelSpec = instantiate(kosum_node(config, "model", str(config_file)))
    if spec.is_random_init:  # its weights were in base_model/: new random ones are not them
        return None
    spec.trust_remote_code = False  # never run code a run folder points to
    spec.allow_pickle = allow_pickle  # nor load its pickles unless the caller allows them
    tokenizer = AutoTokenizer.from_pretrained(run_dir / TOKENIZER)
    return load_model(spec, tokenizer).eval(), tokenizer


def _load_adapter(
    adapter_dir: Path, base_name_or_path: str | None, allow_pickle: bool
) -> torch.nn.Module:
    local_base = adapter_dir.parent / BASE_MODEL
    revision = None  # a base given by the caller is loaded as given
    if base_name_or_path is None:
        if local_base.exists():
            base_name_or_path = str(local_base)
        else:  # the hub revision the run trained on (kosum records it), not the newest
            base_name_or_path, revision = adapter_base(adapter_dir)
    if not base_name_or_path:
        raise FileNotFoundError(
            f"{adapter_dir}: the adapter names no base model and {local_base} does not exist; "
            "pass the base model's name or path"
        )
    base = load_pretrained(base_name_or_path, revision=revision, allow_pickle=allow_pickle)
    return load_adapter(adapter_dir, base).eval()
