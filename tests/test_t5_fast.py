"""`kosum.inference.t5_fast` changes the speed of T5 generation, not what it generates.

The cached position bias must be exactly T5's own; beam-shared cross-attention must equal
attention over per-beam copies; generation inside `fast_t5_generation` must give the stock
sequences for greedy, beam and sampled beam decoding (padding and a LoRA adapter on the
cross-attention projections included); the model must come back unchanged; and models the
fast path does not cover must keep transformers' path. tests/test_generation_consistency.py
also checks every PEFT method's fast generation against teacher forcing.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PrefixTuningConfig, TaskType, get_peft_model
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.t5.modeling_t5 import T5Attention

from kosum.generation import GenerationSettings
from kosum.inference.batched import fast_generation, generate_ids
from kosum.inference.beam_sampling import fast_beam_sampling
from kosum.inference.t5_fast import (
    ATTENTION,
    PositionBiasCache,
    fast_t5_generation,
    kosum_sdpa_attention,
    shared_cross_attention_cache,
)
from tiny_models import tiny_t5

VOCAB = 120
# Three inputs of different lengths, right-padded with 0; 1 is EOS.
INPUT_IDS = torch.tensor(
    [
        [5, 6, 7, 8, 9, 10, 11, 12, 13, 1],
        [14, 15, 16, 17, 1, 0, 0, 0, 0, 0],
        [20, 21, 22, 23, 24, 25, 26, 1, 0, 0],
    ]
)
ATTENTION_MASK = (INPUT_IDS != 0).long()
DECODINGS = {
    "greedy": {"num_beams": 1, "do_sample": False},
    "beam4": {"num_beams": 4, "do_sample": False, "early_stopping": True},
    "beam8_sample": {"num_beams": 8, "do_sample": True, "min_length": 5},  # the seed preset's kind
    # processors that read the encoder's input ids (passed on next to the encoder outputs)
    "encoder_penalties": {
        "num_beams": 4,
        "encoder_repetition_penalty": 3.0,
        "encoder_no_repeat_ngram_size": 2,
    },
}


def _lora_model() -> torch.nn.Module:
    """Tiny T5 with a perturbed LoRA on every attention projection (cross-attention k/v too)."""
    config = LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM, r=4, lora_alpha=8, target_modules=["q", "k", "v", "o"]
    )
    model = get_peft_model(tiny_t5(VOCAB, initializer_factor=2.0), config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def _bias_modules(model: torch.nn.Module) -> list[T5Attention]:
    return [
        m for m in model.modules() if isinstance(m, T5Attention) and m.has_relative_attention_bias
    ]


def test_position_bias_cache_returns_t5s_own_bias():
    model = tiny_t5(VOCAB)
    encoder_attention = model.encoder.block[0].layer[0].SelfAttention
    decoder_attention = model.decoder.block[0].layer[0].SelfAttention
    for module in (encoder_attention, decoder_attention):
        cache = PositionBiasCache(module)
        # prefill, decoding steps, a longer input that grows the cached matrix, a shorter one
        for query_length, key_length, past in [(5, 5, 0), (1, 7, 6), (150, 150, 0), (1, 90, 89)]:
            expected = module.compute_bias(query_length, key_length, past_seen_tokens=past)
            actual = cache(query_length, key_length, past_seen_tokens=past)
            assert torch.equal(actual, expected), (module.is_decoder, query_length, past)
    # the decoder's causal bias differs from the encoder's: the cache must not mix them up
    assert not torch.equal(
        PositionBiasCache(encoder_attention)(4, 4), PositionBiasCache(decoder_attention)(4, 4)
    )


@pytest.mark.parametrize("query_length", [1, 3])
@pytest.mark.parametrize("bias", ["zeros", "random"])
def test_grouped_attention_equals_attention_over_repeated_keys(query_length: int, bias: str):
    batch, groups, heads, key_length, dim = 3, 4, 2, 11, 8
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(batch * groups, heads, query_length, dim, generator=generator)
    key = torch.randn(batch, heads, key_length, dim, generator=generator)
    value = torch.randn(batch, heads, key_length, dim, generator=generator)
    keep = torch.ones(batch, key_length, dtype=torch.bool)
    keep[1, 7:] = False  # padding in one input
    mask = keep[:, None, None, :].expand(batch, 1, query_length, key_length)
    mask = mask.repeat_interleave(groups, dim=0)
    position_bias = (
        torch.zeros(1, heads, query_length, key_length)
        if bias == "zeros"
        else torch.randn(1, heads, query_length, key_length, generator=generator)
    )
    block = tiny_t5(VOCAB).decoder.block[1]
    # a zero bias is what T5's cross-attention has; a random one is only seen by self-attention
    module = block.layer[1].EncDecAttention if bias == "zeros" else block.layer[0].SelfAttention
    expected, _ = sdpa_attention_forward(
        module,
        query,
        key.repeat_interleave(groups, dim=0),
        value.repeat_interleave(groups, dim=0),
        mask,
        scaling=1.0,
        position_bias=position_bias,
    )
    actual, _ = kosum_sdpa_attention(
        module, query, key, value, mask, scaling=1.0, position_bias=position_bias
    )
    assert actual.shape == expected.shape == (batch * groups, query_length, heads, dim)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mask_kind", ["bool", "float", "none"])
def test_cross_attention_without_its_zero_bias_is_bit_identical(mask_kind: str):
    """kosum_sdpa drops T5's all-zero cross-attention bias and broadcasts the padding mask over
    heads: the same numbers as transformers' sdpa with the bias, bit for bit."""
    batch, heads, key_length, dim = 3, 4, 13, 16
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(batch, heads, 1, dim, generator=generator)
    key = torch.randn(batch, heads, key_length, dim, generator=generator)
    value = torch.randn(batch, heads, key_length, dim, generator=generator)
    keep = torch.ones(batch, 1, 1, key_length, dtype=torch.bool)
    keep[0, ..., 9:] = False
    mask = {
        "bool": keep,
        "float": torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min),
        "none": None,
    }[mask_kind]
    module = tiny_t5(VOCAB).decoder.block[0].layer[1].EncDecAttention
    zero_bias = torch.zeros(1, heads, 1, key_length)
    expected, _ = sdpa_attention_forward(
        module, query, key, value, mask, scaling=1.0, position_bias=zero_bias
    )
    actual, _ = kosum_sdpa_attention(
        module, query, key, value, mask, scaling=1.0, position_bias=zero_bias
    )
    assert torch.equal(actual, expected)


def test_grouped_attention_refuses_rows_that_do_not_divide():
    module = tiny_t5(VOCAB).decoder.block[0].layer[1].EncDecAttention
    query, key = torch.zeros(5, 2, 1, 8), torch.zeros(2, 2, 4, 8)
    with pytest.raises(ValueError, match="5 query rows do not divide over 2 key rows"):
        kosum_sdpa_attention(module, query, key, key, None)


@pytest.mark.parametrize("decoding", list(DECODINGS))
def test_fast_generation_gives_the_stock_sequences(decoding: str):
    model = _lora_model()
    options = {**DECODINGS[decoding], "max_length": 12, "suppress_tokens": [0]}
    torch.manual_seed(7)
    with torch.inference_mode():
        stock = model.generate(input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK, **options)
    torch.manual_seed(7)
    with torch.inference_mode(), fast_t5_generation(model) as fast:
        assert fast
        inputs = {"input_ids": INPUT_IDS, "attention_mask": ATTENTION_MASK}
        settings = GenerationSettings(generate=options)
        # stock sampling: kosum's Gumbel sampler draws other values (test_beam_sampling.py)
        fast_ids = generate_ids(model, inputs, settings, fast=True, gumbel_sampling=False)
    assert torch.equal(fast_ids, stock)
    assert len({tuple(row.tolist()) for row in stock}) == len(stock)  # inputs matter


def test_cross_attention_keys_are_projected_once_per_input():
    """The decoder reads the shared cache as built (one row per input), never re-projecting the
    beam-repeated encoder output into it."""
    model = _lora_model()
    with torch.inference_mode(), fast_t5_generation(model):
        encoded = model.get_encoder()(input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK)
        cache = shared_cross_attention_cache(model, encoded.last_hidden_state)
        model.generate(
            encoder_outputs=encoded,
            attention_mask=ATTENTION_MASK,
            cache=cache,
            num_beams=4,
            max_length=6,
        )
    for layer in cache.cross_attention_cache.layers:
        assert layer.keys.shape[0] == layer.values.shape[0] == len(INPUT_IDS)
    # the self-attention cache holds every beam
    assert cache.self_attention_cache.layers[0].keys.shape[0] == 4 * len(INPUT_IDS)


def test_decoder_input_ids_given_by_the_caller_are_kept():
    model = _lora_model()
    start = torch.tensor([[0, 30, 31]] * len(INPUT_IDS))
    inputs = {"input_ids": INPUT_IDS, "attention_mask": ATTENTION_MASK, "decoder_input_ids": start}
    settings = GenerationSettings(generate={"num_beams": 4, "max_length": 10})
    with torch.inference_mode():
        stock = model.generate(**inputs, **settings.generate)
        with fast_generation(model, settings) as fast:
            assert fast
            fast_ids = generate_ids(model, inputs, settings, fast=fast)
    assert torch.equal(fast_ids, stock)
    assert torch.equal(fast_ids[:, :3], start)


def test_static_cache_keeps_the_stock_path():
    settings = GenerationSettings(generate={"cache_implementation": "static"})
    with fast_generation(_lora_model(), settings) as fast:
        assert not fast


def test_position_bias_cache_follows_weight_updates_and_skips_wrapped_embeddings():
    model = tiny_t5(VOCAB)
    module = model.encoder.block[0].layer[0].SelfAttention
    cache = PositionBiasCache(module)
    cache(6, 6)
    with torch.no_grad():
        module.relative_attention_bias.weight.add_(1.0)  # a training step, in place
    assert torch.equal(cache(6, 6), module.compute_bias(6, 6))
    # a LoRA on the bias embedding can be switched off without touching its weight: not cached
    config = LoraConfig(target_modules=["relative_attention_bias"], r=2)
    wrapped = get_peft_model(tiny_t5(VOCAB), config)
    with fast_t5_generation(wrapped):
        assert all("compute_bias" not in m.__dict__ for m in _bias_modules(wrapped))


def test_overlapping_blocks_share_one_patch():
    """Interleaved blocks (two threads, say): the model stays patched while either runs and is
    restored when both have exited."""
    model = _lora_model()
    base = model.get_base_model()
    fast_a, fast_b = fast_t5_generation(model), fast_t5_generation(model)
    sampling_a, sampling_b = fast_beam_sampling(model), fast_beam_sampling(model)
    for block in (fast_a, sampling_a, fast_b, sampling_b):
        block.__enter__()
    fast_a.__exit__(None, None, None)
    sampling_a.__exit__(None, None, None)
    assert base.config._attn_implementation == ATTENTION
    assert all(isinstance(m.compute_bias, PositionBiasCache) for m in _bias_modules(model))
    assert "_get_top_k_continuations" in base.__dict__
    fast_b.__exit__(None, None, None)
    sampling_b.__exit__(None, None, None)
    assert base.config._attn_implementation == "sdpa"
    assert all("compute_bias" not in m.__dict__ for m in _bias_modules(model))
    assert "_get_top_k_continuations" not in base.__dict__


def test_fast_generation_restores_the_model():
    model = _lora_model()
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    assert {c._attn_implementation for c in configs.values()} == {"sdpa"}
    with pytest.raises(RuntimeError, match="inside"), fast_t5_generation(model) as fast:
        assert fast
        assert {c._attn_implementation for c in configs.values()} == {ATTENTION}
        assert all(isinstance(m.compute_bias, PositionBiasCache) for m in _bias_modules(model))
        raise RuntimeError("inside")
    assert {c._attn_implementation for c in configs.values()} == {"sdpa"}
    assert all("compute_bias" not in m.__dict__ for m in _bias_modules(model))


def test_prompt_learning_models_keep_the_stock_path():
    config = PrefixTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4)
    model = get_peft_model(tiny_t5(VOCAB, d_kv=8, d_model=32), config).eval()
    with fast_t5_generation(model) as fast:
        assert not fast
        assert model.get_base_model().config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="needs a T5 model"):
        shared_cross_attention_cache(model, torch.zeros(1, 3, 32))
