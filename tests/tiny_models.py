"""The tiny random-init T5 that unit tests build (no download; seconds on a CPU)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import T5Config, T5ForConditionalGeneration


def tiny_t5(vocab_size: int, seed: int = 0, **overrides: Any) -> T5ForConditionalGeneration:
    """A 2+2-layer T5 (d_model 32) with pko-t5's special ids: pad = decoder start = 0, eos = 1."""
    torch.manual_seed(seed)
    settings: dict[str, Any] = {
        "d_model": 32,
        "d_ff": 64,
        "d_kv": 8,
        "num_heads": 4,
        "num_layers": 2,
        "num_decoder_layers": 2,
        "decoder_start_token_id": 0,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "dropout_rate": 0.0,
    }
    settings.update(overrides)
    return T5ForConditionalGeneration(T5Config(vocab_size=vocab_size, **settings))


def loss_and_gradients(
    model: torch.nn.Module, **batch: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The training-mode loss on `batch` and the gradients it gives the trainable parameters."""
    model.train()
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]
