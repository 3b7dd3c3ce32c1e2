"""`kosum.inference.beam_sampling`: beam-search sampling from uniform noise draws what
`torch.multinomial` draws, in distribution, and plugs into transformers' beam search exactly
where `torch.multinomial` did."""

from __future__ import annotations

import itertools

import pytest
import torch

from kosum.inference.beam_sampling import SPARSE_SHARE, fast_beam_sampling, gumbel_top_k
from tiny_models import tiny_t5

DRAWS = 40_000


def _ordered_pair_frequencies(indices: torch.Tensor, candidates: int) -> torch.Tensor:
    counts = torch.bincount(indices[:, 0] * candidates + indices[:, 1], minlength=candidates**2)
    return counts.view(candidates, candidates).double() / len(indices)


def _exact_ordered_pair_probabilities(probabilities: torch.Tensor) -> torch.Tensor:
    """P(first draw i, second draw j) without replacement: p_i * p_j / (1 - p_i)."""
    exact = torch.zeros(len(probabilities), len(probabilities), dtype=torch.float64)
    for i, j in itertools.permutations(range(len(probabilities)), 2):
        exact[i, j] = probabilities[i] * probabilities[j] / (1 - probabilities[i])
    return exact


FINITE = [2.0, 1.0, 0.5, 0.0, -1.0]


@pytest.mark.parametrize("sampler", ["gumbel_top_k", "gumbel_top_k_sparse", "torch.multinomial"])
def test_draws_follow_sampling_without_replacement(sampler: str):
    """The samplers against the exact probabilities of every ordered pair of draws (4 standard
    errors of tolerance at most; seeded, so the check is deterministic). `sparse`: the finite
    candidates are few among many impossible ones (after a top-k warper), so noise is drawn for
    them alone."""
    if sampler == "gumbel_top_k_sparse":
        log_weights = torch.full((48,), float("-inf"))
        log_weights[[3, 11, 20, 31, 47]] = torch.tensor(FINITE)
        assert SPARSE_SHARE * len(log_weights) >= 5  # the sparse branch
    else:
        log_weights = torch.tensor([*FINITE, float("-inf")])  # one impossible
    possible = log_weights > float("-inf")
    probabilities = log_weights.double().softmax(-1)
    rows = log_weights.expand(DRAWS, -1).contiguous()
    torch.manual_seed(0)
    if sampler.startswith("gumbel_top_k"):
        indices = gumbel_top_k(rows, 2)
    else:
        indices = torch.multinomial(rows.softmax(-1), 2)
    frequencies = _ordered_pair_frequencies(indices, len(log_weights))
    exact = _exact_ordered_pair_probabilities(probabilities)
    impossible = ~possible
    assert frequencies[:, impossible].sum() == frequencies[impossible, :].sum() == 0
    assert (frequencies - exact).abs().max() < 4 * (0.25 / DRAWS) ** 0.5


def test_beam_search_gets_what_its_sampling_branch_makes_of_the_same_draws(
    monkeypatch: pytest.MonkeyPatch,
):
    """Given the draws of `gumbel_top_k`, transformers' own sampling branch (fed them through
    `torch.multinomial`) and the routed one return the same continuations."""
    model = tiny_t5(10)
    generator = torch.Generator().manual_seed(4)
    batch, beams, vocab, length = 2, 3, 10, 6
    arguments = {
        "accumulated_log_probs": torch.randn(batch, beams * vocab, generator=generator),
        "running_sequences": torch.randint(2, vocab, (batch, beams, length), generator=generator),
        "running_beam_indices": torch.full((batch, beams, length - 1), -1),
        "cur_len": 2,
        "decoder_prompt_len": 1,
        "do_sample": True,
        "beams_to_keep": 2 * beams,
        "num_beams": beams,
        "batch_size": batch,
    }
    torch.manual_seed(9)
    draws = gumbel_top_k(arguments["accumulated_log_probs"], 2 * beams)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "multinomial", lambda probabilities, num_samples: draws)
        stock = model._get_top_k_continuations(**arguments)
    torch.manual_seed(9)
    with fast_beam_sampling(model):
        routed = model._get_top_k_continuations(**arguments)
    assert "_get_top_k_continuations" not in model.__dict__  # restored
    for expected, actual in zip(stock, routed, strict=True):
        assert torch.equal(actual, expected)


def test_generate_samples_through_gumbel_and_leaves_deterministic_beams_alone(
    monkeypatch: pytest.MonkeyPatch,
):
    model = tiny_t5(60, initializer_factor=2.0).eval()
    inputs = {"input_ids": torch.tensor([[5, 6, 7, 8, 1], [9, 10, 11, 1, 0]])}
    inputs["attention_mask"] = (inputs["input_ids"] != 0).long()
    beam = {"num_beams": 4, "max_length": 8, "do_sample": False}
    stock_beam = model.generate(**inputs, **beam)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.multinomial was called")

    monkeypatch.setattr(torch, "multinomial", refuse)
    with fast_beam_sampling(model):
        assert torch.equal(model.generate(**inputs, **beam), stock_beam)
        runs = []
        for seed in (1, 1, *range(2, 8)):
            torch.manual_seed(seed)
            # temperature 3: this model's distributions are peaked enough that plain sampling
            # draws the deterministic search's beams
            runs.append(
                model.generate(**inputs, num_beams=4, max_length=8, do_sample=True, temperature=3.0)
            )
    assert torch.equal(runs[0], runs[1])  # seeded: reproducible
    # and really sampled: other seeds draw other beams (not the deterministic search's)
    assert any(not torch.equal(run, runs[0]) for run in runs[2:])
    assert any(not torch.equal(run, stock_beam) for run in runs)
