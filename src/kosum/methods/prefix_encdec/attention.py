"""T5 attention with learned key/value prefixes, as a registered attention function.

`T5Attention.forward` projects the keys and values (from the cache where it has one) and hands
them, with the mask and the relative position bias, to the attention function that
`config._attn_implementation` names. `kosum_prefix+<inner>` is that function for any inner
implementation (`sdpa`, `eager`, kosum's CPU `kosum_fast_dropout`): it prepends the module's
prefix keys/values, widens the mask and the bias over the prefix, and calls the inner function.
No modeling file is copied and the cache never holds the prefix, so cached decoding, beam
reordering and gradient checkpointing see T5's own tensors.

Choices (docs/methods.md):
- **Position bias at prefix positions: zero.** A prefix position has no place in the sequence:
  every query sees it with the same (zero) bias, in the encoder (bidirectional buckets), the
  decoder (causal buckets) and cross-attention (whose bias is zero anyway). The real positions
  keep T5's own bias, so with the prefix switched off the model is the base model exactly.
- **Mask: every query attends to every prefix position**, padding rows included; a causal
  decoder's mask is made explicit (aligned to the last query) before it is widened, since SDPA's
  implicit `is_causal` would align the triangle to the prefixed keys' first column.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.t5.modeling_t5 import eager_attention_forward

NAME = "kosum_prefix"
# Attribute of a prefixed `T5Attention` that holds its `PrefixSource`.
SLOT = "kosum_prefix"


class PrefixSource(Protocol):
    """Where an attention module gets its prefix: `(keys, values)`, each `(heads, tokens,
    d_kv)`, or None while the prefix is switched off."""

    def keys_values(self) -> tuple[torch.Tensor, torch.Tensor] | None: ...

    def record(self, key: torch.Tensor, value: torch.Tensor) -> None:
        """Called with the module's own keys/values before the prefix is added (real-token
        initialisation records them; otherwise a no-op)."""


def implementation_name(inner: str) -> str:
    """The registered name of prefixed attention around `inner` (registered on first use)."""
    name = f"{NAME}+{inner}"
    if name not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        mask = eager_mask if inner == "eager" else ALL_MASK_ATTENTION_FUNCTIONS[inner]
        AttentionInterface.register(name, partial(prefixed_attention, inner=inner))
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, mask)
    return name


def inner_implementation(name: str) -> str:
    """`sdpa` for `kosum_prefix+sdpa`; other names as they are."""
    return name.removeprefix(f"{NAME}+")


def prefixed_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    inner: str,
    position_bias: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`inner` attention over `[prefix; keys]` and `[prefix; values]` (shapes `(batch, heads,
    length, d_kv)`), the mask and the bias widened by the prefix length."""
    source: PrefixSource | None = getattr(module, SLOT, None)
    prefix = None if source is None else source.keys_values()
    if source is not None:
        source.record(key, value)
    if prefix is not None:
        key, value, attention_mask, position_bias = with_prefix(
            prefix, module, query, key, value, attention_mask, position_bias
        )
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(inner, eager_attention_forward)
    return attend(module, query, key, value, attention_mask, position_bias=position_bias, **kwargs)


def with_prefix(
    prefix: tuple[torch.Tensor, torch.Tensor],
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Keys, values, mask and bias with the prefix positions in front (see the module notes)."""
    prefix_keys, prefix_values = prefix
    batch, tokens = key.shape[0], prefix_keys.shape[1]
    query_length, key_length = query.shape[2], key.shape[2]
    if attention_mask is None and query_length > 1 and getattr(module, "is_causal", False):
        # Query i (of the last query_length positions) sees keys up to its own position.
        rows = torch.arange(query_length, device=key.device)[:, None] + (key_length - query_length)
        attention_mask = (torch.arange(key_length, device=key.device)[None, :] <= rows)[None, None]
    if attention_mask is not None:
        # Attend (True, or an additive 0) at every prefix position.
        width = (*attention_mask.shape[:-1], tokens)
        open_mask = (
            attention_mask.new_ones(width)
            if attention_mask.dtype == torch.bool
            else attention_mask.new_zeros(width)
        )
        attention_mask = torch.cat((open_mask, attention_mask), dim=-1)
    if position_bias is not None:
        zeros = position_bias.new_zeros((*position_bias.shape[:-1], tokens))
        position_bias = torch.cat((zeros, position_bias), dim=-1)
    key = torch.cat((prefix_keys.to(key.dtype).expand(batch, -1, -1, -1), key), dim=2)
    value = torch.cat((prefix_values.to(value.dtype).expand(batch, -1, -1, -1), value), dim=2)
    return key, value, attention_mask, position_bias
