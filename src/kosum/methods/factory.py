"""Turn a base model into the model a method trains: the one place that knows method names.

`conf/peft/<method>.yaml` builds a method spec with `_target_`: a PEFT config (`peft.LoraConfig`,
`peft.PrefixTuningConfig`, `peft.PromptTuningConfig`, `peft.IA3Config`, ...) or one of the two
non-PEFT specs below. Adding a PEFT method is one config file; nothing else in kosum (training,
logging, report) branches on the method.
"""

from __future__ import annotations

from dataclasses import dataclass

import peft
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
from torch import nn

from kosum.errors import InputError
from kosum.methods.prefix_generation import enable_prefix_generation


@dataclass(frozen=True)
class FullFineTuning:
    """Train every weight of the base model (no PEFT)."""


@dataclass(frozen=True)
class ZeroShot:
    """Train nothing: evaluate the base model as it is."""


MethodSpec = peft.PeftConfig | FullFineTuning | ZeroShot
# Methods whose trained weights are a delta on the base weights, so they can be folded in
# (`merge_and_unload`), and the names of their config classes (a config's `_target_`).
MERGEABLE_TYPES = (peft.PeftType.LORA, peft.PeftType.IA3)
MERGEABLE_CONFIGS = tuple(PEFT_TYPE_TO_CONFIG_MAPPING[t].__name__ for t in MERGEABLE_TYPES)


def apply_method(
    base_model: nn.Module, spec: MethodSpec, base_revision: str | None = None
) -> nn.Module:
    """Wrap or freeze `base_model` according to `spec` and return the model to train.
    `base_revision` (the hub revision the base was loaded at) is saved in the adapter config,
    so a reload fetches the same base."""
    if isinstance(spec, peft.PeftConfig):
        try:
            adapted = peft.get_peft_model(base_model, spec, revision=base_revision)
        except ValueError as error:  # PEFT's checks of the config against the model
            raise InputError(f"peft ({type(spec).__name__}): {error}") from error
        return enable_prefix_generation(adapted)
    base_model.requires_grad_(isinstance(spec, FullFineTuning))
    return base_model


def is_trainable(spec: MethodSpec) -> bool:
    return not isinstance(spec, ZeroShot)


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
