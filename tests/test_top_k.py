"""`kosum.inference.top_k`: the k-th largest value from chunk maxima equals `torch.topk`'s, ties
and -inf included, and `generate()` under `fast_top_k` masks exactly as transformers does."""

from __future__ import annotations

import pytest
import torch
from transformers import TopKLogitsWarper

from kosum.inference.top_k import FastTopKLogitsWarper, fast_top_k, kth_largest
from tiny_models import tiny_t5


@pytest.mark.parametrize(
    ("rows", "width", "k"),
    [(512, 2000, 50), (16, 50358, 50), (7, 1003, 5), (3, 130, 8), (4, 100, 50), (2, 10, 1)],
)
def test_kth_largest_equals_topk(rows: int, width: int, k: int):
    generator = torch.Generator().manual_seed(rows * width + k)
    scores = torch.randn(rows, width, generator=generator).log_softmax(-1)
    scores[0, : width // 3] = float("-inf")  # masked by an earlier processor
    # heavy ties: values from a small set, so the k-th value repeats across chunks
    scores[1] = torch.randint(0, 4, (width,), generator=generator).float()
    expected = torch.topk(scores, k).values[..., -1:]
    assert torch.equal(kth_largest(scores, k), expected)
    batched = scores.reshape(1, rows, width)  # any leading dimensions
    assert torch.equal(kth_largest(batched, k), expected.reshape(1, rows, 1))


def test_fast_warper_masks_exactly_as_transformers():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(64, 4000, generator=generator)
    scores[3, 100:200] = scores[3, 0]  # ties at every rank
    for top_k in (1, 20, 50):
        stock = TopKLogitsWarper(top_k, min_tokens_to_keep=2)(None, scores)
        fast = FastTopKLogitsWarper(top_k, min_tokens_to_keep=2)(None, scores)
        assert torch.equal(fast, stock)


def test_generate_uses_the_fast_warper_only_inside_the_block(monkeypatch: pytest.MonkeyPatch):
    model = tiny_t5(60, initializer_factor=2.0).eval()
    inputs = {"input_ids": torch.tensor([[5, 6, 7, 8, 1], [9, 10, 11, 1, 0]])}
    inputs["attention_mask"] = (inputs["input_ids"] != 0).long()
    decoding = {"num_beams": 4, "do_sample": True, "top_k": 3, "temperature": 3.0, "max_length": 9}
    torch.manual_seed(2)
    stock = model.generate(**inputs, **decoding)
    calls = []
    original = FastTopKLogitsWarper.__call__

    def counting(self: FastTopKLogitsWarper, input_ids: torch.Tensor, scores: torch.Tensor):
        calls.append(scores.shape)
        return original(self, input_ids, scores)

    monkeypatch.setattr(FastTopKLogitsWarper, "__call__", counting)
    with fast_top_k(model):
        torch.manual_seed(2)
        fast = model.generate(**inputs, **decoding)
    assert calls and torch.equal(fast, stock)  # the same draws from the same masked scores
    assert "_get_logits_processor" not in model.__dict__  # restored
