"""Cheaper dropout for CPU training: same rates and places, a cheaper random mask.

Profiling kosum's CPU training step (docs/performance.md) put 31% of the time in `bernoulli_`,
which `F.dropout` and SDPA's math path use for their masks; T5 has ~66 dropout sites. Here every
`nn.Dropout` draws its mask from 32-bit integers compared with a threshold (same distribution to
within 2**-32, a different random stream, still seeded by torch's global generator), and
attention runs through a registered function that applies such a mask on the math path. Only CPU
training changes: evaluation, generation and other devices take the unchanged SDPA code.
Measured: 1.19-1.26x CPU training throughput. Enabled by `fast_cpu_dropout=true` (default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

FAST_ATTENTION = "kosum_fast_dropout"


def keep_mask(shape: Sequence[int], keep_prob: float, dtype: torch.dtype) -> torch.Tensor:
    """A 0/1 tensor whose entries are 1 with probability `keep_prob` (to within 2**-32).

    `F.dropout` on CPU draws its mask with `bernoulli_`, which costs about twice as much per
    element as drawing 64-bit integers; here one 64-bit draw gives two 32-bit lanes, each compared
    with a threshold. Same distribution as `bernoulli_` up to 2**-32, a different random stream;
    seeded by torch's default generator like `bernoulli_`.
    """
    numel = math.prod(shape)
    bits = torch.empty((numel + 1) // 2, dtype=torch.int64).random_(-(2**63), None)
    lanes = bits.view(torch.int32)[:numel].view(*shape)
    threshold = -(2**31) + round(keep_prob * 2**32)
    return torch.lt(lanes, threshold, out=torch.empty(*shape, dtype=dtype))


class FastDropout(nn.Dropout):
    """`nn.Dropout` whose CPU training mask comes from `keep_mask` (elsewhere: `F.dropout`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.p >= 1.0:
            return F.dropout(x, self.p, True, self.inplace)
        return x * keep_mask(x.shape, 1.0 - self.p, x.dtype).mul_(1.0 / (1.0 - self.p))


def fast_dropout_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    position_bias: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA, except for CPU training with attention dropout: softmax(QKᵀ·s + bias + mask), times a
    `keep_mask`, times V, divided by the keep probability (folded into the output, which is
    d_kv wide instead of key-length wide). Without dropout SDPA can use its fused CPU kernel,
    with dropout it falls back to its math path and `bernoulli_` anyway; this is that math path
    with the cheaper mask and without the per-layer bias+mask tensor and `_safe_softmax` passes.
    """
    q_length, kv_length = query.shape[2], key.shape[2]
    is_causal = q_length > 1 and attention_mask is None and getattr(module, "is_causal", True)
    if (
        not module.training
        or dropout == 0.0
        or query.device.type != "cpu"
        or getattr(module, "num_key_value_groups", 1) > 1
        or (is_causal and kv_length != q_length)  # SDPA crops keys here; leave that to it
    ):
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            position_bias=position_bias,
            **kwargs,
        )
    scores = torch.matmul(query, key.transpose(2, 3))
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    if scaling != 1.0:
        scores.mul_(scaling)
    if position_bias is not None:
        scores.add_(position_bias)
    lowest = torch.finfo(scores.dtype).min
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores.masked_fill_(~attention_mask, lowest)
        else:
            scores.add_(attention_mask)
    elif is_causal:  # as sdpa_attention_forward decides it
        causal = torch.ones(q_length, kv_length, dtype=torch.bool).tril()
        scores.masked_fill_(~causal, lowest)
    probs = torch.softmax(scores, dim=-1)
    probs = probs * keep_mask(probs.shape, 1.0 - dropout, probs.dtype)
    output = torch.matmul(probs, value).mul_(1.0 / (1.0 - dropout))
    return output.transpose(1, 2).contiguous(), None


AttentionInterface.register(FAST_ATTENTION, fast_dropout_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(FAST_ATTENTION, sdpa_mask)


def enable_fast_cpu_dropout(model: nn.Module) -> nn.Module:
    """Swap every `nn.Dropout` for `FastDropout` and route attention through
    `fast_dropout_attention`; same dropout rates and places, eval/generation unchanged (SDPA)."""
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = FastDropout
    model.set_attn_implementation(FAST_ATTENTION)
    return model
