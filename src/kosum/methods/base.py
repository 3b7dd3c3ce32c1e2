"""What kosum asks of an adaptation method, answered in one place per method.

Training, config checks, saving, reloading, generation and reports never look at a method's name
or class: they ask its `Method`. A method is either a PEFT config (`peft.LoraConfig`, ...),
answered by `kosum.methods.peft_method.PeftMethod`, or one of kosum's own methods: a subclass of
`Method` in a folder (or module) under `kosum/methods/`, built from `conf/peft/<name>.yaml` by its
`_target_`. A kosum method that saves an adapter names itself in the adapter folder
(`kosum_adapter.json`); `registered_method` finds its class again from that name, among the
subclasses defined in kosum's own `methods` package only (a run folder may come from someone else).
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from kosum.errors import InputError
from kosum.run_folder import ADAPTER

# The file a kosum method's saved adapter is recognised by (PEFT's is `adapter_config.json`).
KOSUM_ADAPTER_CONFIG = "kosum_adapter.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class Method(ABC):
    """One adaptation method: how it changes a base model and what the rest of kosum may do
    with the result. Class attributes are the answers that do not depend on the settings;
    a subclass overrides them (or makes them properties) where they do."""

    # What messages call the method (`lora`, `prefix_tuning`, `prefix_encdec`, `full`).
    name: ClassVar[str] = "method"
    # Registered name of a kosum method that saves an adapter (`kosum_adapter.json`'s "method").
    adapter_name: ClassVar[str | None] = None
    # Whether anything trains (zero-shot: no; the run is validated and tested once).
    trains: ClassVar[bool] = True
    # Whether its trained weights sit beside the base model's (an adapter) rather than being a
    # whole model (full fine-tuning) or nothing (zero-shot).
    has_adapter: ClassVar[bool] = True
    # Whether the trained weights fold into the base weights (`merge=true`).
    mergeable: ClassVar[bool] = False
    # Whether `gradient_checkpointing=true` works with it.
    allows_gradient_checkpointing: ClassVar[bool] = True
    # Whether the encoder sees the input as the base model would (prompt tuning prepends virtual
    # tokens to it, so the encoder cannot be run on the bare input ids beside the method).
    keeps_encoder_input: ClassVar[bool] = True
    # Whether kosum's fast T5 generation (`kosum.inference.t5_fast`: its own attention function,
    # beam-shared cross-attention) computes the same as the method's model.
    fast_t5_generation: ClassVar[bool] = True
    # The setting that sizes the trainable part (`r`, `num_virtual_tokens`), None if none.
    size_knob: ClassVar[str | None] = None
    # Folder of the run directory its trained weights are saved in.
    saved_folder: ClassVar[str] = ADAPTER

    def check(self) -> None:
        """Raise `ConfigError` (one line naming the setting) for settings that cannot work;
        called by `kosum.training.config_checks` before any data or model is loaded. A method
        that cannot adapt a given base model raises `InputError` from `apply`, before training."""
        return None

    def count_trainable(self, skeleton: nn.Module) -> int:
        """The trainable parameters this method would give `skeleton`, a base model on the
        meta device (left unchanged): for matching parameter budgets."""
        from kosum.methods.factory import parameter_counts

        with torch.device("meta"):
            adapted = self.apply(copy.deepcopy(skeleton))
        return int(parameter_counts(adapted)["trainable_params"])

    def on_train_start(self, model: nn.Module, total_steps: int) -> None:
        """Called once the run knows how many optimiser steps it will take (AdaLoRA's
        schedule); raise `ConfigError` for settings that cannot fit that many steps."""
        return None

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Called after optimiser step `step` (0-based), before the next forward pass, while
        that step's gradients are still there (AdaLoRA reallocates its ranks from them)."""
        return None

    @abstractmethod
    def apply(self, base_model: nn.Module, base_revision: str | None = None) -> nn.Module:
        """The model to train: `base_model` wrapped or frozen. `base_revision` (the hub revision
        the base was loaded at) is saved with the adapter, so a reload fetches the same base."""

    def save(self, model: nn.Module, folder: Path) -> None:
        """Write the trained weights (safetensors) and their config into `folder`: PEFT's and
        kosum's adapters and transformers' models all `save_pretrained` as safetensors."""
        model.save_pretrained(folder)

    @classmethod
    def load(cls, record: dict, folder: Path, base_model: nn.Module) -> nn.Module:
        """The model a kosum method saved in `folder` (`record`: its `kosum_adapter.json`) on
        `base_model`; for methods with an `adapter_name`."""
        raise NotImplementedError(f"{cls.__name__} saves no kosum adapter")


def registered_method(name: str, where: str) -> type[Method]:
    """The kosum method class whose `adapter_name` is `name` (a saved adapter's record);
    `where` names the file for the error."""
    _import_method_modules()
    found = {
        cls.adapter_name: cls
        for cls in _subclasses(Method)
        if cls.adapter_name and cls.__module__.startswith("kosum.methods.")
    }
    if name not in found:
        raise InputError(f"{where}: method {name!r} is not one of kosum's methods {sorted(found)}")
    return found[name]


def _subclasses(cls: type) -> list[type]:
    direct = cls.__subclasses__()
    return direct + [grand for sub in direct for grand in _subclasses(sub)]


def _import_method_modules() -> None:
    """Import every module and folder under `kosum.methods`, so each method class is defined."""
    package = importlib.import_module("kosum.methods")
    for info in pkgutil.iter_modules(package.__path__, prefix="kosum.methods."):
        importlib.import_module(info.name)
