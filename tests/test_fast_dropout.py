"""The CPU dropout kosum trains with keeps torch's rates and leaves evaluation untouched."""

from __future__ import annotations

import copy

import torch
from torch import nn

from kosum.training.fast_dropout import FastDropout, enable_fast_cpu_dropout, keep_mask
from tiny_models import tiny_t5


def test_keep_mask_has_the_requested_keep_probability():
    torch.manual_seed(0)
    mask = keep_mask((1_000_000,), 0.9, torch.float32)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert abs(mask.mean().item() - 0.9) < 0.002


def test_fast_dropout_is_unbiased_in_training_and_identity_in_eval():
    layer = FastDropout(p=0.1)
    x = torch.ones(200_000)
    layer.train()
    torch.manual_seed(0)
    out = layer(x)
    assert abs(out.mean().item() - 1.0) < 0.01
    assert abs((out == 0).float().mean().item() - 0.1) < 0.005
    layer.eval()
    assert torch.equal(layer(x), x)


def test_enabled_model_matches_stock_model_in_eval_and_trains():
    stock = tiny_t5(64, dropout_rate=0.1)
    fast = enable_fast_cpu_dropout(copy.deepcopy(stock))
    assert not any(type(m) is nn.Dropout for m in fast.modules())
    inputs = torch.randint(3, 64, (2, 10))
    labels = torch.randint(3, 64, (2, 5))
    stock.eval()
    fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            fast(input_ids=inputs, labels=labels).logits,
            stock(input_ids=inputs, labels=labels).logits,
        )
        assert torch.equal(
            fast.generate(input_ids=inputs, max_length=6),
            stock.generate(input_ids=inputs, max_length=6),
        )
    fast.train()
    loss = fast(input_ids=inputs, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in fast.parameters() if p.requires_grad)
