"""Beam-search multinomial sampling (`num_beams > 1, do_sample=True`, the seed's decoding) with
cheaper noise and the same distribution.

At every step transformers draws `2 × num_beams` continuations per input without replacement
from the `num_beams × vocabulary` candidates: `torch.multinomial(softmax(scores), k)`, which
draws one `Exp(1)` variable per candidate with `exponential_` and keeps the `k` largest
`p / E`. On CPU `exponential_` runs serially at ≈ 15 ns per value: 16,000 candidates per input
and step for the tiny model (8 beams × 2,000 tokens), ≈ 24 ms of a summary's 66 ms, paid per
input however large the batch (docs/inference.md).

`gumbel_top_k` selects with the Gumbel-top-k trick instead: the `k` largest
`scores + G` with `G = -log(-log U)`, `U` uniform. `-log U` is `Exp(1)`, so `scores + G` orders the
candidates exactly as `log(p / E)` does: the same sequential sampling without replacement
(the same probability for every ordered draw), from uniform noise that costs ≈ 2 ns per value.
The random stream differs from `exponential_`'s, so outputs at a given seed differ from stock
`generate()`'s while following the same distribution (tests/test_beam_sampling.py compares
both samplers with the exact probabilities). When a top-k warper has left few finite
candidates, the noise is drawn for those alone. `fast_beam_sampling(model)` routes a model's beam
sampling through it for the duration of a block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from kosum.inference.patching import generation_model, shared_patch

# Below this share of finite candidates per row, noise is drawn for those candidates only.
SPARSE_SHARE = 1 / 8


def gumbel_top_k(log_weights: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of `k` draws without replacement from each row of `softmax(log_weights)`, in
    draw order. Draws from torch's global generator (seed it for reproducible output).

    A candidate at -inf can never be drawn before a finite one, so when a top-k (or top-p)
    warper has left few finite candidates (the seed preset: 8 × 50 of 8 × 2,000 or more), the
    noise is drawn for those alone: `topk` gathers each row's finite candidates (padded with
    -inf ones for rows that have fewer), and the draws are made among them. Same
    distribution, other draws at a given seed than the dense path.

    float32 noise: `U = 0` (probability 2^-24 per candidate) excludes that candidate, and the
    Gumbel tail is cut at ≈ 16.6, beyond which it has probability 6e-8.
    """
    finite = int((log_weights > float("-inf")).sum(-1).max())
    if k <= finite <= SPARSE_SHARE * log_weights.shape[-1]:
        values, columns = log_weights.topk(finite, dim=-1, sorted=False)
        return columns.gather(-1, _perturbed(values).topk(k, dim=-1).indices)
    return _perturbed(log_weights).topk(k, dim=-1).indices


def _perturbed(log_weights: torch.Tensor) -> torch.Tensor:
    """`log_weights + G`, G standard Gumbel noise (`-log(-log U)`)."""
    noise = torch.rand_like(log_weights, dtype=torch.float32).log_().neg_().log_()
    return log_weights - noise


def _sampling_by_gumbel_top_k(original: Callable[..., Any]) -> Callable[..., Any]:
    """`_get_top_k_continuations` whose sampling branch draws with `gumbel_top_k`.

    The draws are handed to the deterministic branch with every other candidate at -inf: its
    `topk` then returns exactly the drawn candidates, sorted by score, which is what the
    sampling branch does with the draws of `torch.multinomial`.
    """

    def top_k_continuations(accumulated_log_probs: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("do_sample") and "beams_to_keep" in kwargs:
            drawn = gumbel_top_k(accumulated_log_probs, kwargs["beams_to_keep"])
            only_drawn = torch.full_like(accumulated_log_probs, float("-inf"))
            only_drawn.scatter_(1, drawn, accumulated_log_probs.gather(1, drawn))
            accumulated_log_probs = only_drawn
            kwargs["do_sample"] = False
        return original(accumulated_log_probs, *args, **kwargs)

    return top_k_continuations


@contextmanager
def fast_beam_sampling(model: torch.nn.Module) -> Iterator[None]:
    """Within the block, beam-search sampling of `model` (bare or PEFT) uses `gumbel_top_k`.
    Blocks on one model may overlap (nested, or in threads)."""
    hf_model = generation_model(model)
    if not hasattr(hf_model, "_get_top_k_continuations"):  # no transformers beam search
        yield
        return

    def patch() -> Callable[[], None]:
        original = hf_model._get_top_k_continuations
        hf_model._get_top_k_continuations = _sampling_by_gumbel_top_k(original)
        return lambda: hf_model.__dict__.pop("_get_top_k_continuations", None)

    with shared_patch(hf_model, "fast_beam_sampling", patch):
        yield
