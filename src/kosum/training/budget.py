"""`trainable_budget=N`: size each method to the same number of trainable parameters.

Methods are compared fairly only at equal budgets (He et al. 2022). With a budget, the run sets
its method's size knob (`Method.size_knob`: LoRA's `r`, a prefix's `num_virtual_tokens`, ...) to
the value whose trainable-parameter count on the run's model comes nearest to N, before any data
is read: counts come from the model's architecture on the meta device (no weights). A method
whose nearest count is more than 20% off N, or that has no size knob, stops the run with one
line. `results.json` records the budget, the value chosen and the count reached.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from kosum.errors import ConfigError
from kosum.methods.base import Method
from kosum.methods.factory import as_method
from kosum.models.backbone import model_skeleton

TOLERANCE = 0.2
LARGEST_SIZE = 1 << 16


@dataclass(frozen=True)
class FittedBudget:
    """How a run met its `trainable_budget` (recorded in results.json)."""

    budget: int
    setting: str
    value: int
    trainable_params: int

    @property
    def relative_error(self) -> float:
        return abs(self.trainable_params - self.budget) / self.budget

    def record(self) -> dict:
        return {**asdict(self), "relative_error": self.relative_error}


def check_budget(cfg: DictConfig, method: Method) -> None:
    """Refuse a budget that is not a positive number, or a method that trains but has no size
    knob. Zero-shot trains nothing: a sweep's budget does not concern it."""
    budget = cfg.get("trainable_budget")
    if budget is None:
        return
    if isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 1:
        raise ConfigError(f"trainable_budget={budget!r}: a positive number of parameters, or null")
    if method.trains and method.size_knob is None:
        raise ConfigError(
            f"trainable_budget={budget:g} with {method.name} (peft): this method has no size "
            "knob to match a budget with (LoRA's r, a prefix's num_virtual_tokens); drop "
            "trainable_budget for it"
        )


def fit_trainable_budget(cfg: DictConfig) -> FittedBudget | None:
    """Set `cfg.peft.<size knob>` to meet `cfg.trainable_budget` (checked by `check_budget`);
    None without a budget or for a method that trains nothing."""
    if cfg.get("trainable_budget") is None:
        return None
    budget = round(float(cfg.trainable_budget))
    settings = OmegaConf.to_container(cfg.peft, resolve=True)
    method = as_method(instantiate(OmegaConf.create(settings)))
    if not method.trains:
        return None
    knob = method.size_knob
    skeleton = model_skeleton(instantiate(cfg.model))

    def sized(value: int) -> Method:
        return as_method(instantiate(OmegaConf.create({**settings, knob: value})))

    @functools.cache
    def count(value: int) -> int:
        return sized(value).count_trainable(skeleton)

    value = nearest_size(count, budget)
    fitted = FittedBudget(budget, f"peft.{knob}", value, count(value))
    sized(value).check()
    if fitted.relative_error > TOLERANCE:
        extreme = {1: " (the smallest)", LARGEST_SIZE: " (the largest tried)"}.get(value, "")
        raise ConfigError(
            f"trainable_budget={budget:,}: {method.name} (peft) cannot come within "
            f"{TOLERANCE:.0%} of it on this model; nearest is {knob}={value}{extreme}, with "
            f"{fitted.trainable_params:,} trainable parameters"
        )
    with open_dict(cfg):
        cfg.peft[knob] = value
    return fitted


def nearest_size(count: Callable[[int], int], budget: int) -> int:
    """The size in 1..LARGEST_SIZE whose `count` is nearest `budget` (the smaller on a tie),
    for a `count` that grows with the size."""
    low, high = 0, 1  # count(low) < budget, or low is 0
    while count(high) < budget and high < LARGEST_SIZE:
        low, high = high, min(2 * high, LARGEST_SIZE)
    while high - low > 1:  # smallest size reaching the budget lies in (low, high]
        middle = (low + high) // 2
        if count(middle) >= budget:
            high = middle
        else:
            low = middle
    if low >= 1 and budget - count(low) <= count(high) - budget:
        return low
    return high
