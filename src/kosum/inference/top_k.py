"""transformers' `top_k` warper with a cheaper, exact threshold.

Sampling (the seed preset, and transformers' default `top_k=50`) masks every logit below the
k-th largest of its row; `TopKLogitsWarper` finds that value with `torch.topk` over the whole
row. On CPU, with k = 50 and 2,000-50,000 columns, `topk` runs its `nth_element` branch at about
4 ns per value: 4 ms per step for 8 beams × 64 inputs × 2,000 tokens, an eighth of the seed
preset's step (docs/inference.md).

`kth_largest` gets the same value from far fewer candidates. Split a row into chunks and take
each chunk's maximum; the k chunks with the largest maxima hold k values at least as large as
the k-th largest maximum m, so the row's k-th largest value t is ≥ m, and every value above t
lies in a chunk whose maximum exceeds m, which is among those k. So the k-th largest of those
chunks' values (plus the few columns left over after the last whole chunk) is exactly t, ties
included. `FastTopKLogitsWarper` masks with it as transformers does: bit-identical output
(tests/test_top_k.py), in about half the time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import LogitsProcessorList, TopKLogitsWarper

from kosum.inference.patching import generation_model, shared_patch

# Chunks per row ≈ 8 k (fewer, larger chunks leave more candidates); at most 64 columns each,
# which keeps the candidates (k × chunk) in `topk`'s faster partial-sort branch for large rows.
CHUNKS_PER_K = 8
MAX_CHUNK = 64


def kth_largest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest value of each row of `scores` (last dimension), keeping that dimension:
    `torch.topk(scores, k).values[..., -1:]` for NaN-free scores, computed from fewer values."""
    width = scores.shape[-1]
    chunk = min(MAX_CHUNK, width // (CHUNKS_PER_K * max(k, 1)))
    if chunk < 2:  # too few columns per k to gain: torch's own
        return torch.topk(scores, k).values[..., -1:]
    rows = scores.reshape(-1, width)
    chunks = rows.unfold(-1, chunk, chunk)  # a view: (rows, width // chunk, chunk)
    best = chunks.amax(-1).topk(k, dim=-1, sorted=False).indices
    candidates = chunks.gather(1, best.unsqueeze(-1).expand(-1, -1, chunk)).flatten(1)
    covered = chunks.shape[1] * chunk
    if covered < width:  # the columns after the last whole chunk are always candidates
        candidates = torch.cat([candidates, rows[:, covered:]], dim=1)
    threshold = candidates.topk(k, dim=-1, sorted=False).values.amin(-1, keepdim=True)
    return threshold.reshape(*scores.shape[:-1], 1)


class FastTopKLogitsWarper(TopKLogitsWarper):
    """`TopKLogitsWarper` with its threshold from `kth_largest`: the same scores out."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        top_k = min(self.top_k, scores.size(-1))
        return scores.masked_fill(scores < kth_largest(scores, top_k), self.filter_value)


def _with_fast_top_k(original: Callable[..., LogitsProcessorList]) -> Callable[..., Any]:
    """`_get_logits_processor` whose top-k warpers are `FastTopKLogitsWarper`s."""

    def get_logits_processor(*args: Any, **kwargs: Any) -> LogitsProcessorList:
        processors = original(*args, **kwargs)
        for index, processor in enumerate(processors):
            if type(processor) is TopKLogitsWarper:
                processors[index] = FastTopKLogitsWarper(
                    processor.top_k, processor.filter_value, processor.min_tokens_to_keep
                )
        return processors

    return get_logits_processor


@contextmanager
def fast_top_k(model: torch.nn.Module) -> Iterator[None]:
    """Within the block, `generate()` of `model` (bare or PEFT) masks top-k with
    `FastTopKLogitsWarper`. Blocks on one model may overlap (nested, or in threads)."""
    hf_model = generation_model(model)
    if not hasattr(hf_model, "_get_logits_processor"):  # not a transformers generator
        yield
        return

    def patch() -> Callable[[], None]:
        hf_model._get_logits_processor = _with_fast_top_k(hf_model._get_logits_processor)
        return lambda: hf_model.__dict__.pop("_get_logits_processor", None)

    with shared_patch(hf_model, "fast_top_k", patch):
        yield
