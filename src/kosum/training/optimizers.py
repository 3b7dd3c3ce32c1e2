"""Optimisers that need the model, not only its trainable parameters: PEFT's LoRA+.

`conf/optim/*.yaml` are partials: most are torch or transformers optimiser classes, called
with the trainable parameters. LoRA+ (Hayou et al. 2024) gives LoRA's B matrices a learning
rate `loraplus_lr_ratio` times A's, so it must know which parameter is which: its factory
takes the model (`build_optimizer` tells the two kinds apart by `takes_model`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import get_class


def loraplus(
    model: torch.nn.Module,
    *,
    lr: float,
    loraplus_lr_ratio: float = 16.0,
    optimizer: str = "torch.optim.AdamW",
    **settings: Any,
) -> torch.optim.Optimizer:
    """PEFT's `create_loraplus_optimizer` for `model` (a PEFT LoRA model), with `optimizer`'s
    class and its other `settings` (weight_decay, betas, ...)."""
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(
        model=model,
        optimizer_cls=get_class(optimizer),
        lr=lr,
        loraplus_lr_ratio=loraplus_lr_ratio,
        **settings,
    )


loraplus.takes_model = True  # type: ignore[attr-defined]


def build_optimizer(
    factory: Callable[..., torch.optim.Optimizer], model: torch.nn.Module
) -> torch.optim.Optimizer:
    """The run's optimiser from its `optim` partial: given the model when the factory takes
    one (LoRA+), else the trainable parameters."""
    if getattr(getattr(factory, "func", factory), "takes_model", False):
        return factory(model)
    return factory([p for p in model.parameters() if p.requires_grad])
