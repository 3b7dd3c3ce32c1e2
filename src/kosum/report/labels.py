"""Short, human-readable labels for configuration settings (`r=8`, `categories=news_r+minute`).

Shared by the report's tables and plots and by the W&B run names and tags, so a configuration
reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Dotted config keys shown under a shorter name; others are shown as they are.
SHORT_NAMES: dict[str, str] = {
    "method": "method",
    "peft.r": "r",
    "peft.num_virtual_tokens": "tokens",
    "peft.where": "where",
    "data.categories": "categories",
    "data.test_categories": "test categories",
    "optim.lr": "lr",
    "trainer.max_epochs": "epochs",
}


def short_name(key: str) -> str:
    return SHORT_NAMES.get(key, key)


def format_value(value: Any) -> str:
    """A setting's value as text: lists joined by `+`, floats in short form unless that loses
    digits (an Optuna learning rate keeps all of them: two trials must not share a label),
    None as `none`."""
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "+".join(format_value(item) for item in value)
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def setting_label(key: str, value: Any) -> str:
    """`r=8`; the method is shown bare (`lora`)."""
    return format_value(value) if key == "method" else f"{short_name(key)}={format_value(value)}"


def config_label(settings: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """`lora r=8 prompt=summarize` from (key, value) pairs, skipping unset (None) values."""
    pairs = settings.items() if isinstance(settings, Mapping) else settings
    return " ".join(setting_label(key, value) for key, value in pairs if value is not None)
