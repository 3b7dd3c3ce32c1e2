"""The prefix-tuned T5: learned key/value prefixes per layer in the chosen places, around a
frozen base model.

`PrefixEncDecModel` wraps a `T5ForConditionalGeneration` as PEFT's models do (`forward`,
`generate`, `get_base_model`, `disable_adapter`, `save_pretrained`; other attributes fall
through to the base model). Each prefixed `T5Attention` gets a `LayerPrefix` (its place's table
and layer index) under `attention.SLOT`, and the base model's attention implementation becomes
`kosum_prefix+<its own>`. A place's table holds `(layers, 2, heads, tokens, d_kv)` keys and
values, either as one parameter or produced by Li & Liang's reparameterisation MLP; the saved
adapter always holds the plain tensors (the MLP folded), so a reloaded model computes nothing
extra.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5Attention

from kosum.errors import InputError
from kosum.methods.base import ADAPTER_WEIGHTS, KOSUM_ADAPTER_CONFIG
from kosum.methods.prefix_encdec.attention import (
    SLOT,
    implementation_name,
    inner_implementation,
)

if TYPE_CHECKING:
    from kosum.methods.prefix_encdec import PrefixEncDecConfig

PLACES = ("encoder", "decoder", "cross")


def attention_modules(base: T5ForConditionalGeneration, place: str) -> list[T5Attention]:
    """The attention module of each layer at `place`, in layer order."""
    if place == "encoder":
        return [block.layer[0].SelfAttention for block in base.encoder.block]
    if place == "decoder":
        return [block.layer[0].SelfAttention for block in base.decoder.block]
    return [block.layer[1].EncDecAttention for block in base.decoder.block]


class PrefixTable(nn.Module):
    """The prefix keys/values of every layer at one place, `(layers, 2, heads, tokens, d_kv)`.

    Plain: one parameter of that shape. Projected (Li & Liang): `tokens` embeddings of width
    d_model through Linear → tanh → Linear to all layers' keys and values; the result is cached
    until a parameter changes, so a forward pass (and its gradient-checkpointing recomputation)
    runs the MLP once."""

    def __init__(self, shape: tuple[int, ...], d_model: int, hidden: int | None) -> None:
        super().__init__()
        self.shape = shape  # (layers, 2, heads, tokens, d_kv)
        layers, _, heads, tokens, d_kv = shape
        self.disabled = False
        self._cache: tuple[tuple, torch.Tensor] | None = None
        if hidden is None:
            self.prefix = nn.Parameter(torch.randn(self.shape))  # N(0, 1), as PEFT's embedding
            self.embedding = self.mlp = None
        else:
            self.prefix = None
            self.embedding = nn.Parameter(torch.randn(tokens, d_model))
            self.mlp = nn.Sequential(
                nn.Linear(d_model, hidden), nn.Tanh(), nn.Linear(hidden, layers * 2 * heads * d_kv)
            )

    def full(self) -> torch.Tensor:
        """All layers' prefixes, `(layers, 2, heads, tokens, d_kv)`."""
        if self.prefix is not None:
            return self.prefix
        key = (  # `.to()` swaps a parameter's data without a new version: dtype and device too
            tuple((p._version, p.dtype, p.device) for p in self.parameters()),
            torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(),
        )
        if self._cache is None or self._cache[0] != key:
            layers, _, heads, tokens, d_kv = self.shape
            projected = self.mlp(self.embedding).view(tokens, layers, 2, heads, d_kv)
            self._cache = (key, projected.permute(1, 2, 3, 0, 4))
        return self._cache[1]

    def forget(self) -> None:
        """Drop the cached projection (a new training forward pass builds a new graph)."""
        self._cache = None

    def __getstate__(self) -> dict[str, Any]:
        # A copy recomputes the projection (a non-leaf tensor of a graph cannot be deep-copied).
        return {**super().__getstate__(), "_cache": None}

    def folded(self) -> torch.Tensor:
        """The prefix as plain tensors, detached (what an adapter saves)."""
        with torch.no_grad():
            return self.full().detach().clone().contiguous()


class LayerPrefix:
    """One attention module's view of its place's table (not a module: no second owner)."""

    def __init__(self, table: PrefixTable, layer: int) -> None:
        self.table = table
        self.layer = layer
        self.recorded: tuple[torch.Tensor, torch.Tensor] | None = None
        self.recording = False

    def keys_values(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.table.disabled:
            return None
        keys_values = self.table.full()[self.layer]
        return keys_values[0], keys_values[1]

    def record(self, key: torch.Tensor, value: torch.Tensor) -> None:
        if self.recording:
            self.recorded = (key[0].detach().clone(), value[0].detach().clone())


class PrefixEncDecModel(nn.Module):
    """A frozen T5 with trainable key/value prefixes at `config.where`."""

    def __init__(
        self, base_model: nn.Module, config: PrefixEncDecConfig, base_revision: str | None = None
    ) -> None:
        super().__init__()
        if not isinstance(base_model, T5ForConditionalGeneration):
            raise InputError(
                f"peft=prefix_encdec needs a T5 model (T5ForConditionalGeneration, T5 or T5 v1.1); "
                f"the base model is a {type(base_model).__name__}"
            )
        self.base_model = base_model
        self.kosum_method = config
        self.base_revision = base_revision  # saved with the adapter: a reload gets this base
        base_model.requires_grad_(False)
        d_model = base_model.config.d_model
        hidden = (config.encoder_hidden_size or d_model) if config.prefix_projection else None
        shapes = self.expected_shapes(base_model, config)
        self.prefixes = nn.ModuleDict()
        for place in config.where:
            table = PrefixTable(shapes[f"{place}.prefix"], d_model, hidden)
            self.prefixes[place] = table
            for layer, module in enumerate(attention_modules(base_model, place)):
                setattr(module, SLOT, LayerPrefix(table, layer))
        self.set_attn_implementation(base_model.config._attn_implementation)

    # -- what a model does ---------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled():
            # A new graph for this pass, built here, outside the blocks that gradient
            # checkpointing recomputes: inside, both passes then read the same cached tensors.
            for table in self.prefixes.values():
                table.forget()
                table.full()
        return self.base_model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.base_model.generate(*args, **kwargs)

    def get_base_model(self) -> nn.Module:
        return self.base_model

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)

    def set_attn_implementation(self, implementation: str) -> None:
        """Run `implementation` (sdpa, eager, ...) inside the prefixed attention."""
        inner = inner_implementation(implementation)
        self.base_model.set_attn_implementation(implementation_name(inner))

    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Within the block the model is its base model (no prefix anywhere)."""
        previous = {place: table.disabled for place, table in self.prefixes.items()}
        for table in self.prefixes.values():
            table.disabled = True
        try:
            yield
        finally:
            for place, table in self.prefixes.items():
                table.disabled = previous[place]

    # -- initialisation from real tokens (Li & Liang's low-data init) ---------------------------
    @torch.no_grad()
    def initialise_from_tokens(self, token_ids: list[int]) -> None:
        """Set every plain prefix to the keys/values that the base model computes for
        `token_ids` (exactly `num_virtual_tokens` of them) at that layer and place: the encoder
        and the decoder each read the tokens, cross-attention the encoder's output for them."""
        slots = [
            getattr(module, SLOT)
            for place in self.prefixes
            for module in attention_modules(self.base_model, place)
        ]
        ids = torch.tensor([token_ids], device=self.base_model.device)
        was_training = self.base_model.training
        with self.disable_adapter():
            for slot in slots:
                slot.recording = True
            try:
                self.base_model.eval()(input_ids=ids, decoder_input_ids=ids)
            finally:
                self.base_model.train(was_training)
                for slot in slots:
                    slot.recording = False
        for place, table in self.prefixes.items():
            layers = [getattr(m, SLOT).recorded for m in attention_modules(self.base_model, place)]
            table.prefix.copy_(torch.stack([torch.stack(kv) for kv in layers]))
        for slot in slots:
            slot.recorded = None

    @torch.no_grad()
    def zero_prefixes(self) -> None:
        """Zero keys and values everywhere. Not the base model: every query still gives each
        prefix position the weight exp(0), which scales its attention to real tokens down."""
        for table in self.prefixes.values():
            table.prefix.zero_()

    # -- saving and loading --------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> None:
        """`kosum_adapter.json` (the method's settings, the base model) and the folded prefixes
        as safetensors."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "method": self.kosum_method.adapter_name,
            "settings": {**asdict(self.kosum_method), "prefix_projection": False},
            "trained_with_projection": self.kosum_method.prefix_projection,
            "base_model_name_or_path": self.base_model.config.name_or_path or None,
            "revision": self.base_revision,
        }
        (folder / KOSUM_ADAPTER_CONFIG).write_text(json.dumps(record, indent=2) + "\n")
        tensors = {f"{place}.prefix": table.folded() for place, table in self.prefixes.items()}
        save_file(tensors, str(folder / ADAPTER_WEIGHTS))

    @staticmethod
    def expected_shapes(base_model: nn.Module, config: PrefixEncDecConfig) -> dict[str, tuple]:
        """`<place>.prefix` → the shape `config` gives it on `base_model` (a T5)."""
        t5 = base_model.config
        return {
            f"{place}.prefix": (
                len(attention_modules(base_model, place)),
                2,
                t5.num_heads,
                config.num_virtual_tokens,
                t5.d_kv,
            )
            for place in config.where
        }

    def load_prefixes(self, folder: Path) -> None:
        """Load the folded prefixes `save_pretrained` wrote (their shapes checked by the
        caller, `PrefixEncDecConfig.load`) into this plain model."""
        tensors = load_file(str(folder / ADAPTER_WEIGHTS))
        with torch.no_grad():
            for place, table in self.prefixes.items():
                # In the dtype it was saved in, so the reloaded model computes what was saved.
                table.prefix.data = tensors[f"{place}.prefix"].to(table.prefix.device)
