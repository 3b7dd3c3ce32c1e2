"""Faster T5 generation without changing the decoding: a position-bias cache and beam-shared
cross-attention.

Three costs of transformers' T5 that batching alone does not remove (docs/inference.md has the
profiles and the numbers):

1. **Relative position bias, recomputed per call.** Every encoder forward computes the bucket of
   each of the length² query/key pairs (`abs`, `log`, `min`, `where`), gathers the bias and
   `sdpa` then copies the permuted view into a contiguous mask: ≈ 7 ms of a 12 ms encoder pass
   on 750 tokens (tiny model, 2 cores), per document, one at a time or batched. The bias of
   positions `past..past+q` against `0..k` is a slice of one bias matrix for the longest length
   seen, because it depends only on the distance `key - query`; `PositionBiasCache` computes that
   matrix once per module and returns slices, and `kosum_sdpa` hands the strided slice to
   `scaled_dot_product_attention`, which reads it as it is. Bit-identical.
2. **Cross-attention keys/values of every beam.** `generate()` repeats the encoder output
   `num_beams` times, projects it to keys/values once per beam, and every decoding step then
   attends each beam's single query over its own copy. `shared_cross_attention_cache` projects
   each input once; `kosum_sdpa` recognises queries whose batch is a multiple of the keys' batch
   (`generate()` lays the beams of input `b` out as rows `b * beams ... b * beams + beams - 1`)
   and attends all beams of an input in one call, reading its keys/values once instead of
   `num_beams` times. The same arithmetic in another order: equal to per-beam attention to
   ~1e-6, not bit for bit.
3. The cross-attention cache is never reordered between beams (`CrossAttentionKeepingCache`):
   the beams of an input share one copy.

Everything applies to `T5ForConditionalGeneration`, bare or with a weight adapter (LoRA, IA3,
...), inside `fast_t5_generation(model)` and is undone when the last such block exits. Other
models, and methods that change the attention inputs (`Method.fast_t5_generation` false: PEFT's
prefix and prompt tuning, kosum's `prefix_encdec`, whose own attention function this path would
replace), keep transformers' own path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import AttentionInterface, DynamicCache, EncoderDecoderCache
from transformers.integrations.sdpa_attention import (
    create_position_bias_mask,
    sdpa_attention_forward,
)
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.models.t5.modeling_t5 import T5Attention, T5ForConditionalGeneration

from kosum.inference.patching import generation_model, shared_patch
from kosum.methods.factory import method_of_model

ATTENTION = "kosum_sdpa"
ROW_ALIGNMENT = 64


class CrossAttentionKeepingCache(EncoderDecoderCache):
    """An `EncoderDecoderCache` whose beam-search reorder leaves the cross-attention cache alone.

    Exact only when the cross-attention keys/values of all beams of one input are equal, which
    `generate()` guarantees for beam search on an encoder-decoder model: the encoder output is
    repeated `num_beams` times and beams are only ever reordered within their input. Stock
    transformers reorders (copies) batch × beams × source length × d_model values per layer
    after every step; that was 72% of CPU time for 16 inputs × 8 beams.
    """

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)


def kosum_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    position_bias: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' `sdpa` attention, plus beam-shared keys/values and no bias copy.

    Shapes: query `(batch * groups, heads, q, dim)`, key/value `(batch, heads, k, dim)`, where
    `groups > 1` only for cross-attention over `shared_cross_attention_cache`.
    """
    groups, remainder = divmod(query.shape[0], key.shape[0])
    if remainder:
        raise ValueError(
            f"attention: {query.shape[0]} query rows do not divide over {key.shape[0]} key rows"
        )
    if _is_cross_attention(module):
        # T5's cross-attention bias is all zeros: the padding mask alone is the same additive
        # mask, broadcast over heads instead of materialised per head at every step.
        attention_mask, position_bias = _additive(attention_mask, query, key), None
    if groups > 1:
        return _grouped_attention(
            query, key, value, attention_mask, groups, dropout, scaling, position_bias
        )
    causal_prefill = query.shape[2] > 1 and getattr(module, "is_causal", False)
    if position_bias is not None and attention_mask is None and not causal_prefill:
        # The bias alone is the additive mask; the stock path would copy it (contiguous()).
        attention_mask, position_bias = position_bias, None
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


def _is_cross_attention(module: torch.nn.Module) -> bool:
    """T5's decoder cross-attention: the only T5 attention that is neither causal nor encoder
    self-attention, and it never has a relative position bias (its bias is zeros)."""
    return (
        isinstance(module, T5Attention)
        and module.is_decoder
        and not module.is_causal
        and not module.has_relative_attention_bias
    )


def _additive(
    mask: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor
) -> torch.Tensor | None:
    """`mask` as `create_position_bias_mask` makes it from a zero bias, without the bias's heads
    dimension: a boolean mask becomes 0 / the dtype's minimum; a float mask is already that
    (`0 + mask` is `mask`); no mask stays none (a zero mask adds nothing)."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    additive = torch.zeros(mask.shape, dtype=query.dtype, device=mask.device)
    return additive.masked_fill_(~mask, torch.finfo(key.dtype).min)


def _grouped_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    groups: int,
    dropout: float,
    scaling: float | None,
    position_bias: torch.Tensor | None,
) -> tuple[torch.Tensor, None]:
    """Attend the `groups` query rows of each key row together: one read of its keys/values."""
    batch, heads, _, dim = key.shape
    query_length = query.shape[2]
    # Rows of one input are copies (generate()'s expansion): keep one per key row.
    mask = None if attention_mask is None else attention_mask[::groups]
    if position_bias is not None:
        bias = position_bias if position_bias.shape[0] == 1 else position_bias[::groups]
        mask = create_position_bias_mask(bias, mask, False, query, key)
    if mask is not None and query_length > 1 and mask.shape[2] > 1:
        mask = mask.repeat(1, 1, groups, 1)  # query rows are (group, position) pairs below
    grouped = (
        query.view(batch, groups, heads, query_length, dim)
        .transpose(1, 2)
        .reshape(batch, heads, groups * query_length, dim)
    )
    output = torch.nn.functional.scaled_dot_product_attention(
        grouped, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling
    )
    output = (
        output.view(batch, heads, groups, query_length, dim)
        .permute(0, 2, 3, 1, 4)
        .reshape(batch * groups, query_length, heads, dim)
    )
    return output, None


AttentionInterface.register(ATTENTION, kosum_sdpa_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)


class PositionBiasCache:
    """`T5Attention.compute_bias` computed once for the longest length and sliced afterwards.

    T5's bias for query position `i` and key position `j` depends only on `j - i`, so the bias
    of queries `past..past+q` over keys `0..k` is rows `past..past+q`, columns `0..k` of the
    bias matrix of any size ≥ both. The matrix is recomputed when a longer input arrives (once
    for length-sorted batches, longest first); its size is a multiple of `ROW_ALIGNMENT`, so
    that slices keep aligned rows, which CUDA's attention kernels need to read them in place.
    It is also recomputed when the bias weights change in place (a training step).
    """

    def __init__(self, module: T5Attention) -> None:
        self.module = module
        self.full: torch.Tensor | None = None
        self.weights_seen: tuple[int, int] | None = None

    def __call__(
        self,
        query_length: int,
        key_length: int,
        device: torch.device | None = None,
        past_seen_tokens: int | torch.Tensor = 0,
    ) -> torch.Tensor:
        weight = self.module.relative_attention_bias.weight
        device = device or weight.device
        past = int(past_seen_tokens)
        needed = max(past + query_length, key_length)
        weights = (weight.data_ptr(), weight._version)
        if (
            self.full is None
            or self.full.shape[-1] < needed
            or self.full.device != device
            or self.weights_seen != weights
        ):
            size = -(-needed // ROW_ALIGNMENT) * ROW_ALIGNMENT
            compute = type(self.module).compute_bias
            self.full = compute(self.module, size, size, device=device).contiguous()
            self.weights_seen = weights
        return self.full[:, :, past : past + query_length, :key_length]


def fast_t5_model(model: torch.nn.Module) -> T5ForConditionalGeneration | None:
    """The T5 under `model` when the fast path applies to it (its method allows it), else None."""
    if not method_of_model(model).fast_t5_generation:
        return None
    model = generation_model(model)
    return model if isinstance(model, T5ForConditionalGeneration) else None


@contextmanager
def fast_t5_generation(model: torch.nn.Module) -> Iterator[bool]:
    """Within the block, `model` (a T5, plain or weight-adapted) uses `kosum_sdpa` attention and
    cached position biases; yields whether it does. Blocks on one model may overlap (nested, or
    in threads): the model is changed when the first enters and restored when the last exits."""
    t5 = fast_t5_model(model)
    if t5 is None:
        yield False
        return
    with shared_patch(t5, "fast_t5_generation", lambda: _patch(t5)):
        yield True


def _patch(t5: T5ForConditionalGeneration) -> Callable[[], None]:
    """Switch `t5` to `kosum_sdpa` and cached biases; return the undo."""
    configs = {id(m.config): m.config for m in t5.modules() if hasattr(m, "config")}
    previous = {key: config._attn_implementation for key, config in configs.items()}
    # A bias embedding wrapped by PEFT can change without its weight changing (adapter on/off).
    cached = [
        m
        for m in t5.modules()
        if isinstance(m, T5Attention)
        and m.has_relative_attention_bias
        and type(m.relative_attention_bias) is torch.nn.Embedding
    ]
    for config in configs.values():
        config._attn_implementation = ATTENTION
    for module in cached:
        module.compute_bias = PositionBiasCache(module)

    def undo() -> None:
        for key, config in configs.items():
            config._attn_implementation = previous[key]
        for module in cached:
            module.__dict__.pop("compute_bias", None)

    return undo


def shared_cross_attention_cache(
    model: torch.nn.Module, encoder_hidden_states: torch.Tensor
) -> CrossAttentionKeepingCache:
    """A decoder cache whose cross-attention keys/values are already projected, once per input.

    Pass it as `generate(cache=...)` with the same encoder output, inside
    `fast_t5_generation(model)`: `generate()` still repeats the encoder output per beam, but the
    decoder reads the keys/values from here (their layers are marked done) and `kosum_sdpa`
    shares each input's copy among its beams.
    """
    t5 = fast_t5_model(model)
    if t5 is None:
        raise ValueError("shared_cross_attention_cache needs a T5 model, plain or weight-adapted")
    decoder_config = t5.config.get_text_config(decoder=True)
    cross = DynamicCache(config=decoder_config)
    batch, length, _ = encoder_hidden_states.shape
    for index, block in enumerate(t5.decoder.block):
        attention: T5Attention = block.layer[1].EncDecAttention
        shape = (batch, length, -1, attention.key_value_proj_dim)
        # Contiguous per head (stock keeps the projection's strided view): every decoding step
        # streams these, and SDPA reads them ≈ 30 % faster laid out head by head.
        keys = attention.k(encoder_hidden_states).view(shape).transpose(1, 2).contiguous()
        values = attention.v(encoder_hidden_states).view(shape).transpose(1, 2).contiguous()
        cross.update(keys, values, index)
    return CrossAttentionKeepingCache(DynamicCache(config=decoder_config), cross)
