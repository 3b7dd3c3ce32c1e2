"""A PEFT config (`peft.LoraConfig`, `peft.PrefixTuningConfig`, ...) as a kosum `Method`.

`conf/peft/<method>.yaml` with a PEFT config `_target_` is all a PEFT method needs: the answers
below come from the config's PEFT type, so a new PEFT config class needs no code here.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import peft
from torch import nn

from kosum.errors import ConfigError, InputError
from kosum.methods.base import Method
from kosum.methods.prefix_generation import enable_prefix_generation

# Methods whose trained weights are a delta on (or a factor of) the base weights, so they can be
# folded in (`merge_and_unload`; tests/test_peft_catalogue.py checks each gives the same logits).
MERGEABLE_TYPES = (
    peft.PeftType.LORA,
    peft.PeftType.IA3,
    peft.PeftType.ADALORA,
    peft.PeftType.VERA,
    peft.PeftType.LOHA,
    peft.PeftType.LOKR,
    peft.PeftType.OFT,
)
MERGEABLE = ", ".join(str(t.value).lower() for t in MERGEABLE_TYPES)
# The setting that sizes each PEFT method's trainable part (`trainable_budget` sets it). Not
# sized: OFT (its block width must divide every adapted layer's width), LoKr (its Kronecker
# factors' shapes cap the rank: on the smoke model every r above 8 trains the same 1,536
# parameters) and IA3 (no size at all).
SIZE_KNOBS = {
    peft.PeftType.LORA: "r",
    peft.PeftType.ADALORA: "init_r",  # what trains; it prunes down towards target_r
    peft.PeftType.VERA: "r",
    peft.PeftType.LOHA: "r",
    peft.PeftType.PREFIX_TUNING: "num_virtual_tokens",
    peft.PeftType.PROMPT_TUNING: "num_virtual_tokens",
}
# LoRA initialisations that draw random numbers from the base weights (randomised SVD) or
# rewrite them in ways PEFT's reload does not redo exactly.
IRREPRODUCIBLE_INITS = ("pissa_niter_", "corda", "eva", "loftq")


class PeftMethod(Method):
    """The answers for one PEFT config."""

    def __init__(self, config: peft.PeftConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:  # type: ignore[override]
        return str(self.config.peft_type.value).lower()

    @property
    def mergeable(self) -> bool:  # type: ignore[override]
        return self.config.peft_type in MERGEABLE_TYPES

    @property
    def allows_gradient_checkpointing(self) -> bool:  # type: ignore[override]
        # PEFT prefix tuning passes past key values that checkpointing cannot recompute, and
        # PEFT refuses the pair.
        return self.config.peft_type != peft.PeftType.PREFIX_TUNING

    @property
    def keeps_encoder_input(self) -> bool:  # type: ignore[override]
        return not self.config.is_prompt_learning

    @property
    def fast_t5_generation(self) -> bool:  # type: ignore[override]
        # Prompt learning changes the attention inputs (a prefix cache, prepended embeddings).
        return not self.config.is_prompt_learning

    @property
    def size_knob(self) -> str | None:  # type: ignore[override]
        return SIZE_KNOBS.get(self.config.peft_type)

    def check(self) -> None:
        if self.config.peft_type == peft.PeftType.ADALORA and not (
            self.config.target_r <= self.config.init_r
        ):
            raise ConfigError(
                f"peft.init_r={self.config.init_r} below peft.target_r={self.config.target_r}: "
                "AdaLoRA prunes its ranks from init_r down to target_r; raise init_r (or the "
                "trainable_budget that sets it) or lower target_r"
            )
        init = getattr(self.config, "init_lora_weights", True)
        if isinstance(init, str) and init.lower().startswith(IRREPRODUCIBLE_INITS):
            raise ConfigError(
                f"peft.init_lora_weights={init}: this initialisation rewrites the base weights "
                "in a way a reload does not reproduce (PEFT redoes it on the fresh base, and "
                "a randomised SVD comes out different), so kosum-eval/kosum-predict would not "
                "get the trained model back; use pissa or olora (reloaded exactly), or true"
            )

    def count_trainable(self, skeleton: nn.Module) -> int:
        # Initialisations that read weights or files (PiSSA's SVD, prompt tuning from a text)
        # cannot run on the meta device and do not change the count.
        neutral = {
            name: value
            for name, value in (("init_lora_weights", True), ("prompt_tuning_init", "RANDOM"))
            if hasattr(self.config, name)
        }
        counted = PeftMethod(dataclasses.replace(copy.deepcopy(self.config), **neutral))
        return Method.count_trainable(counted, skeleton)

    def save(self, model: nn.Module, folder: Path) -> None:
        if self.config.peft_type == peft.PeftType.ADALORA:
            _match_rank_pattern_to_weights(model)
        model.save_pretrained(folder)

    def on_train_start(self, model: nn.Module, total_steps: int) -> None:
        if self.config.peft_type != peft.PeftType.ADALORA:
            return
        # PEFT needs AdaLoRA's total steps when the config is built; the YAML cannot know them.
        config = model.peft_config[model.active_adapter]
        if not config.tinit < total_steps - config.tfinal:
            raise ConfigError(
                f"peft.tinit={config.tinit}, peft.tfinal={config.tfinal}: this run takes "
                f"{total_steps} optimiser steps, which leaves AdaLoRA no steps to reallocate "
                "ranks in (needs tinit < steps - tfinal)"
            )
        config.total_step = total_steps
        model.base_model.rankallocator.set_total_step(total_steps)

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        if self.config.peft_type == peft.PeftType.ADALORA:
            model.base_model.update_and_allocate(step)

    def apply(self, base_model: nn.Module, base_revision: str | None = None) -> nn.Module:
        try:
            adapted = peft.get_peft_model(base_model, self.config, revision=base_revision)
        except ValueError as error:  # PEFT's checks of the config against the model
            raise InputError(f"peft ({type(self.config).__name__}): {error}") from error
        return enable_prefix_generation(adapted)


def _match_rank_pattern_to_weights(model: nn.Module) -> None:
    """AdaLoRA saves each layer's singular values cut to `rank_pattern`, the pattern of its
    last reallocation; after the best checkpoint's weights are restored that pattern may be a
    later step's. AdaLoRA prunes by setting values to exactly zero, so the weights themselves
    say which are kept."""
    adapter = model.active_adapter
    config = model.peft_config[adapter]
    if config.rank_pattern is None:  # no reallocation yet: every rank is saved
        return
    config.rank_pattern = {
        name: (parameter != 0).view(-1).tolist()
        for name, parameter in model.base_model.model.named_parameters()
        if f"lora_E.{adapter}" in name
    }


def load_peft_adapter(folder: Path, base_model: nn.Module) -> nn.Module:
    """A PEFT adapter saved in `folder`, on `base_model`, with generation fixed for prefixes."""
    return enable_prefix_generation(peft.PeftModel.from_pretrained(base_model, folder))
