"""The seam between kosum and its adaptation methods: specs, models and saved adapters → `Method`.

`conf/peft/<method>.yaml` builds a method spec with `_target_`: a PEFT config (`peft.LoraConfig`,
`peft.PrefixTuningConfig`, ...), `FullFineTuning`, `ZeroShot`, or one of kosum's own methods
(`kosum.methods.prefix_encdec.PrefixEncDecConfig`, a `Method` subclass). `as_method` answers for
a spec, `method_of_model` for a model already built or reloaded, and `load_adapter` reloads what
a method saved. Nothing else in kosum branches on a method's name or class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import peft
from torch import nn

from kosum.errors import InputError
from kosum.methods.base import KOSUM_ADAPTER_CONFIG, Method, registered_method
from kosum.methods.peft_method import PeftMethod, load_peft_adapter
from kosum.run_folder import FULL_MODEL

PEFT_ADAPTER_CONFIG = "adapter_config.json"


class FullFineTuning(Method):
    """Train every weight of the base model (no PEFT)."""

    name: ClassVar[str] = "full"
    has_adapter: ClassVar[bool] = False
    saved_folder: ClassVar[str] = FULL_MODEL

    def apply(self, base_model: nn.Module, base_revision: str | None = None) -> nn.Module:
        return base_model.requires_grad_(True)


class ZeroShot(Method):
    """Train nothing: evaluate the base model as it is."""

    name: ClassVar[str] = "none"
    has_adapter: ClassVar[bool] = False
    trains: ClassVar[bool] = False

    def apply(self, base_model: nn.Module, base_revision: str | None = None) -> nn.Module:
        return base_model.requires_grad_(False)

    def save(self, model: nn.Module, folder: Path) -> None:
        raise RuntimeError("a zero-shot run trains nothing and saves no weights")


MethodSpec = peft.PeftConfig | Method


def as_method(spec: MethodSpec) -> Method:
    """The `Method` for a spec built from `conf/peft/<method>.yaml`."""
    if isinstance(spec, Method):
        return spec
    if isinstance(spec, peft.PeftConfig):
        return PeftMethod(spec)
    raise InputError(
        f"peft: {type(spec).__name__} is neither a PEFT config nor a kosum method "
        "(kosum.methods.base.Method)"
    )


def apply_method(
    base_model: nn.Module, spec: MethodSpec, base_revision: str | None = None
) -> nn.Module:
    """Wrap or freeze `base_model` according to `spec` and return the model to train."""
    return as_method(spec).apply(base_model, base_revision)


def method_of_model(model: nn.Module) -> Method:
    """The method of a model built by `apply_method` or reloaded by `load_adapter`; a plain
    transformers model (full fine-tuning, zero-shot, merged) answers as `FullFineTuning`."""
    if isinstance(model, peft.PeftModel):
        return PeftMethod(model.active_peft_config)
    kosum_method = getattr(model, "kosum_method", None)
    return kosum_method if isinstance(kosum_method, Method) else FullFineTuning()


def is_adapter_folder(folder: Path) -> bool:
    return (folder / KOSUM_ADAPTER_CONFIG).is_file() or (folder / PEFT_ADAPTER_CONFIG).is_file()


def adapter_base(folder: Path) -> tuple[str | None, str | None]:
    """The base model (name or path, revision) a saved adapter was trained on, as recorded."""
    if (folder / KOSUM_ADAPTER_CONFIG).is_file():
        record = _kosum_record(folder)
        return record.get("base_model_name_or_path"), record.get("revision")
    recorded = peft.PeftConfig.from_pretrained(folder)
    return recorded.base_model_name_or_path, recorded.revision


def load_adapter(folder: Path, base_model: nn.Module) -> nn.Module:
    """The adapter saved in `folder` (by a kosum method or PEFT) on `base_model`, ready for
    generation."""
    if (folder / KOSUM_ADAPTER_CONFIG).is_file():
        record = _kosum_record(folder)
        where = str(folder / KOSUM_ADAPTER_CONFIG)
        return registered_method(str(record.get("method")), where).load(record, folder, base_model)
    return load_peft_adapter(folder, base_model)


def _kosum_record(folder: Path) -> dict:
    path = folder / KOSUM_ADAPTER_CONFIG
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable adapter record ({error})") from None
    if not isinstance(record, dict):
        raise InputError(f"{path}: expected a JSON object")
    return record


def parameter_counts(model: nn.Module) -> dict[str, float]:
    """Trainable and total parameter counts (shared weights counted once) and their ratio."""
    seen: set[int] = set()
    trainable = total = 0
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_fraction": trainable / total if total else 0.0,
    }
