"""`peft=prefix_encdec`: Li & Liang's prefix tuning for T5, in the encoder's self-attention, the
decoder's self-attention and cross-attention (PEFT's `prefix` reaches the decoder's
self-attention only). docs/methods.md has what it changes, its parameter counts and its costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from safetensors import safe_open
from torch import nn
from transformers import AutoTokenizer, T5ForConditionalGeneration

from kosum.errors import ConfigError, InputError
from kosum.methods.base import ADAPTER_WEIGHTS, KOSUM_ADAPTER_CONFIG, Method
from kosum.methods.prefix_encdec.model import PLACES, PrefixEncDecModel

INITS = ("random", "text", "zero")


@dataclass
class PrefixEncDecConfig(Method):
    """Settings of `conf/peft/prefix_encdec.yaml` (see there for each one)."""

    num_virtual_tokens: int = 20
    where: Sequence[str] = field(default_factory=lambda: list(PLACES))
    prefix_projection: bool = False
    encoder_hidden_size: int | None = None
    init: str = "random"
    init_text: str | None = None
    tokenizer_name_or_path: str | None = None

    name: ClassVar[str] = "prefix_encdec"
    adapter_name: ClassVar[str] = "prefix_encdec"
    size_knob: ClassVar[str] = "num_virtual_tokens"
    # Its attention function replaces the one kosum's fast T5 path installs.
    fast_t5_generation: ClassVar[bool] = False

    def check(self) -> None:
        where = list(self.where) if isinstance(self.where, Sequence) else None
        if isinstance(self.where, str) or not where:
            raise ConfigError(
                f"peft.where={self.where!r}: give a non-empty list of places from {list(PLACES)}"
            )
        unknown = [place for place in where if place not in PLACES]
        if unknown or len(set(where)) != len(where):
            raise ConfigError(
                f"peft.where={where}: each place once, from {list(PLACES)}"
                + (f" ({unknown} unknown)" if unknown else "")
            )
        if not (isinstance(self.num_virtual_tokens, int) and self.num_virtual_tokens >= 1):
            raise ConfigError(
                f"peft.num_virtual_tokens={self.num_virtual_tokens!r}: must be a positive integer"
            )
        if self.encoder_hidden_size is not None and not (
            isinstance(self.encoder_hidden_size, int) and self.encoder_hidden_size >= 1
        ):
            raise ConfigError(
                f"peft.encoder_hidden_size={self.encoder_hidden_size!r}: a positive integer, or "
                "null for the model's d_model"
            )
        if self.init not in INITS:
            raise ConfigError(f"peft.init={self.init!r}: one of {list(INITS)}")
        if self.init == "text" and not self.init_text:
            raise ConfigError("peft.init=text needs peft.init_text='<words to start from>'")
        if self.init != "random" and self.prefix_projection:
            raise ConfigError(
                f"peft.init={self.init} with peft.prefix_projection=true: it initialises the "
                "prefix itself, not the MLP that produces it; choose one"
            )

    def count_trainable(self, skeleton: nn.Module) -> int:
        # A text initialisation runs the base model on the run's tokenizer; it adds nothing.
        return Method.count_trainable(replace(self, init="random"), skeleton)

    def apply(self, base_model: nn.Module, base_revision: str | None = None) -> nn.Module:
        model = PrefixEncDecModel(base_model, self, base_revision)
        if self.init == "text":
            model.initialise_from_tokens(self._init_token_ids())
        elif self.init == "zero":
            model.zero_prefixes()
        return model

    def _init_token_ids(self) -> list[int]:
        """`init_text`'s token ids, repeated or cut to `num_virtual_tokens`."""
        if not self.tokenizer_name_or_path:
            raise InputError("peft.init=text needs peft.tokenizer_name_or_path (a run sets it)")
        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name_or_path)
        ids = tokenizer(self.init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise InputError(f"peft.init_text={self.init_text!r} has no tokens")
        return (ids * -(-self.num_virtual_tokens // len(ids)))[: self.num_virtual_tokens]

    @classmethod
    def load(cls, record: dict, folder: Path, base_model: nn.Module) -> PrefixEncDecModel:
        """The model saved in `folder` (its `kosum_adapter.json` is `record`) on `base_model`."""
        settings = record.get("settings")
        try:
            method = cls(**{**settings, "init": "random", "prefix_projection": False})
            method.check()
        except (TypeError, ConfigError) as error:
            raise InputError(f"{folder}: unusable prefix_encdec settings: {error}") from None
        if not isinstance(base_model, T5ForConditionalGeneration):
            raise InputError(f"{folder}: a prefix_encdec adapter needs a T5 base model")
        # Checked before anything of those sizes is allocated (the record may come from anyone).
        with safe_open(str(folder / ADAPTER_WEIGHTS), framework="pt") as saved:
            shapes = {name: tuple(saved.get_slice(name).get_shape()) for name in saved.keys()}  # noqa: SIM118
        expected = PrefixEncDecModel.expected_shapes(base_model, method)
        if shapes != expected:
            raise InputError(
                f"{folder / ADAPTER_WEIGHTS}: holds {shapes}, the base model and "
                f"{KOSUM_ADAPTER_CONFIG} need {expected}"
            )
        model = PrefixEncDecModel(base_model, method, record.get("revision"))
        model.load_prefixes(folder)
        return model
