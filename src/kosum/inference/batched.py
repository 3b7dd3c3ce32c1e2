"""Batched summary generation shared by `kosum-predict`, benchmarks and (optionally) evaluation.

`generate_summaries` tokenises every text once, counts the ones cut at `max_source_length`,
sorts them by length (longest first, so a batch pads little and an out-of-memory error shows up
at once), generates batch by batch under `torch.inference_mode` (bf16 autocast on a CUDA device
that supports it; fp32 elsewhere) and returns the summaries in input order.

On T5 models (plain, or adapted by a method whose `Method.fast_t5_generation` is true) generation
runs inside `kosum.inference.t5_fast`'s `fast_t5_generation`: position biases are cached, each
input's cross-attention keys/values are projected once and shared by its beams, and the
cross-attention cache is never reordered between beams. Other models get only the last of these
(`beam_cache_kwargs`). docs/inference.md has the profiles behind each change.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm
from transformers import DynamicCache, PreTrainedTokenizerBase
from transformers.modeling_outputs import BaseModelOutput

from kosum.generation import GenerationSettings
from kosum.inference.beam_sampling import fast_beam_sampling
from kosum.inference.patching import generation_model
from kosum.inference.t5_fast import (
    CrossAttentionKeepingCache,
    fast_t5_generation,
    shared_cross_attention_cache,
)
from kosum.inference.top_k import fast_top_k
from kosum.methods.factory import method_of_model


@dataclass(frozen=True)
class BatchTiming:
    """One `generate()` call: how many inputs, their padded width, and its wall time."""

    size: int
    input_width: int
    output_width: int
    seconds: float


@dataclass
class GenerationResult:
    """Summaries in input order, plus what happened on the way.

    `input_tokens[i]` is the length of text i before truncation; `truncated` lists the indices
    cut to `max_source_length`; `batch_of[i]` indexes `batches` for text i.
    """

    summaries: list[str]
    input_tokens: list[int]
    truncated: list[int]
    batch_of: list[int]
    batches: list[BatchTiming] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def truncated_count(self) -> int:
        return len(self.truncated)

    @property
    def summaries_per_second(self) -> float:
        return len(self.summaries) / self.seconds if self.seconds > 0 else 0.0


def generate_summaries(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    settings: GenerationSettings,
    batch_size: int = 16,
    max_source_length: int = 1024,
    *,
    seed: int | None = None,
    sort_by_length: bool = True,
    fast_t5: bool = True,
    keep_cross_attention: bool = True,
    gumbel_sampling: bool = True,
    exact_fast_top_k: bool = True,
    encode_one_by_one: bool | None = None,
    bf16_autocast: bool = True,
    progress: bool = False,
) -> GenerationResult:
    """Summarise `texts` (already prompted) with `model` on the device its weights are on.

    For comparisons: `fast_t5=False` turns off `kosum.inference.t5_fast` (position-bias cache,
    beam-shared cross-attention), `keep_cross_attention=False` (with `fast_t5=False`) falls
    back to transformers' own cache, `gumbel_sampling=False` to `torch.multinomial` for beam
    sampling, `exact_fast_top_k=False` to transformers' top-k warper, and
    `encode_one_by_one=False` to a padded encoder batch (None: one by one on CPU,
    batched on CUDA). `bf16_autocast=False` keeps the model's own precision on CUDA too.
    Sampling draws from a generator seeded with `seed` and each batch's text positions
    (`GenerationSettings.seeded`), or with `seed=None` from torch's global generator; either
    way outputs also depend on `batch_size` and the order, as a batch's draws are shared.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    started = time.perf_counter()
    token_ids, input_tokens, truncated = _tokenize(tokenizer, texts, max_source_length)
    order = list(range(len(texts)))
    if sort_by_length:
        order.sort(key=lambda i: -len(token_ids[i]))
    device = next(model.parameters()).device
    if encode_one_by_one is None:
        encode_one_by_one = device.type == "cpu"
    encode_one_by_one = encode_one_by_one and _can_encode_separately(model)
    summaries = [""] * len(texts)
    batch_of = [0] * len(texts)
    batches: list[BatchTiming] = []
    bar = tqdm(
        total=len(texts), desc="summarising", unit="doc", file=sys.stderr, disable=not progress
    )
    fast = fast_generation(model, settings) if fast_t5 else nullcontext(False)
    precision = autocast_for(device) if bf16_autocast else nullcontext()
    with bar, torch.inference_mode(), precision, fast as fast_active:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch_started = time.perf_counter()
            chunk_ids = [token_ids[i] for i in chunk]
            batch = tokenizer.pad({"input_ids": chunk_ids}, return_tensors="pt")
            batch = {key: value.to(device) for key, value in batch.items()}
            if encode_one_by_one:
                batch["encoder_outputs"] = _encode_each(model, chunk_ids, batch["attention_mask"])
            with settings.seeded(seed, chunk) if seed is not None else nullcontext():
                sequences = generate_ids(
                    model,
                    batch,
                    settings,
                    fast=fast_active,
                    keep_cross_attention=keep_cross_attention,
                    gumbel_sampling=gumbel_sampling,
                    exact_fast_top_k=exact_fast_top_k,
                )
            decoded = tokenizer.batch_decode(sequences, skip_special_tokens=True)
            for index, text in zip(chunk, decoded, strict=True):
                summaries[index] = settings.postprocess(text)
                batch_of[index] = len(batches)
            batches.append(
                BatchTiming(
                    size=len(chunk),
                    input_width=int(batch["attention_mask"].shape[1]),
                    output_width=int(sequences.shape[1]),
                    seconds=time.perf_counter() - batch_started,
                )
            )
            bar.update(len(chunk))
    return GenerationResult(
        summaries=summaries,
        input_tokens=input_tokens,
        truncated=truncated,
        batch_of=batch_of,
        batches=batches,
        seconds=time.perf_counter() - started,
    )


def _tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> tuple[list[list[int]], list[int], list[int]]:
    """Token ids (truncated as the tokenizer truncates), full lengths, and truncated indices."""
    token_ids = tokenizer(list(texts), verbose=False)["input_ids"] if texts else []
    lengths = [len(ids) for ids in token_ids]
    truncated = [i for i, length in enumerate(lengths) if length > max_length]
    if truncated:
        cut = tokenizer([texts[i] for i in truncated], truncation=True, max_length=max_length)
        for i, ids in zip(truncated, cut["input_ids"], strict=True):
            token_ids[i] = ids
    return token_ids, lengths, truncated


def _can_encode_separately(model: torch.nn.Module) -> bool:
    """Encoder-decoder models whose method leaves the encoder input alone (not prompt tuning)."""
    if not method_of_model(model).keeps_encoder_input:
        return False
    return bool(getattr(model.config, "is_encoder_decoder", False))


def _encode_each(
    model: torch.nn.Module, chunk_ids: list[list[int]], attention_mask: torch.Tensor
) -> BaseModelOutput:
    """The encoder run on each text alone, its states laid out where `attention_mask` is 1.

    On CPU, a padded encoder batch is slower per text than one text at a time: T5 folds the
    padding mask into its relative position bias, materialising (and copying) a float tensor of
    batch × heads × length² per layer, which is memory-bound. Unpadded, the encoder computes
    exactly what the one-at-a-time loop computes.
    """
    encoder = model.get_encoder()
    device = attention_mask.device
    states = [
        encoder(input_ids=torch.tensor([ids], device=device)).last_hidden_state[0]
        for ids in chunk_ids
    ]
    hidden = states[0].new_zeros(*attention_mask.shape, states[0].shape[-1])
    for row, state in enumerate(states):
        hidden[row, attention_mask[row].bool()] = state
    return BaseModelOutput(last_hidden_state=hidden)


def autocast_for(device: torch.device) -> AbstractContextManager[Any]:
    """bf16 autocast on a CUDA device that supports it; nothing (fp32) elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def generate_ids(
    model: torch.nn.Module,
    inputs: dict[str, Any],
    settings: GenerationSettings,
    *,
    fast: bool,
    keep_cross_attention: bool = True,
    gumbel_sampling: bool = True,
    exact_fast_top_k: bool = True,
) -> Any:
    """`model.generate(**inputs)` on one batch: `input_ids` + `attention_mask` (+ optionally
    `encoder_outputs` already computed from them, and any other `generate()` input). `fast`: the
    caller holds `fast_generation(model, settings)` and it yielded True, so the decoder gets a
    `shared_cross_attention_cache`; otherwise beam search gets a `CrossAttentionKeepingCache`
    unless `keep_cross_attention=False`. Beam sampling draws with
    `kosum.inference.beam_sampling` unless `gumbel_sampling=False` (stock `torch.multinomial`);
    top-k masks with `kosum.inference.top_k` (same output) unless `exact_fast_top_k=False`.
    `input_ids` stay in the call with `encoder_outputs`: the encoder-side logits processors
    (`encoder_repetition_penalty`, `encoder_no_repeat_ngram_size`) read them."""
    # Without a mask generate() infers one from the pad tokens: that stays its job.
    if fast and "attention_mask" in inputs:
        if "encoder_outputs" not in inputs:
            encoder = model.get_encoder()
            encoded = encoder(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            )
            inputs = {**inputs, "encoder_outputs": BaseModelOutput(encoded.last_hidden_state)}
        states = inputs["encoder_outputs"].last_hidden_state
        cache = {"cache": shared_cross_attention_cache(model, states)}
    elif keep_cross_attention:
        cache = beam_cache_kwargs(model, settings)
    else:
        cache = {}
    sampling = fast_beam_sampling(model) if gumbel_sampling else nullcontext()
    top_k = fast_top_k(model) if exact_fast_top_k else nullcontext()
    with sampling, top_k:
        return model.generate(**inputs, **settings.generate, **cache)


def fast_generation(
    model: torch.nn.Module, settings: GenerationSettings
) -> AbstractContextManager[bool]:
    """`fast_t5_generation(model)` where `generate()` decodes with its default dynamic cache
    (a static cache is made for `torch.compile`, which the Python-side bias cache would break),
    else a block that yields False."""
    if _uses_dynamic_cache(model, settings):
        return fast_t5_generation(model)
    return nullcontext(False)


def _uses_dynamic_cache(model: torch.nn.Module, settings: GenerationSettings) -> bool:
    """Whether `generate()` with these settings decodes with transformers' default cache."""
    hf_model = generation_model(model)
    generation_config = hf_model.generation_config
    options = settings.generate
    uses_cache = options.get("use_cache", generation_config.use_cache)
    custom_cache = options.get("cache_implementation", generation_config.cache_implementation)
    return bool(uses_cache) and custom_cache is None


def beam_cache_kwargs(model: torch.nn.Module, settings: GenerationSettings) -> dict[str, Any]:
    """`{"cache": CrossAttentionKeepingCache(...)}` for `model.generate(**inputs, **settings,
    **beam_cache_kwargs(model, settings))` where it is exact and allowed (beam search on an
    encoder-decoder model with the default dynamic cache), else `{}`. A new cache per call."""
    hf_model = generation_model(model)
    config = hf_model.config
    beams = settings.generate.get("num_beams", hf_model.generation_config.num_beams) or 1
    if beams <= 1 or not config.is_encoder_decoder or not _uses_dynamic_cache(model, settings):
        return {}
    decoder_config = config.get_text_config(decoder=True)
    return {
        "cache": CrossAttentionKeepingCache(
            DynamicCache(config=decoder_config), DynamicCache(config=decoder_config)
        )
    }
