"""Reload what a training run saved: base model + adapter (or full weights) + tokenizer.

A run directory holds `adapter/` (PEFT `save_pretrained`, safetensors) or `model/` (full
fine-tuning), the tokenizer beside it, and `base_model/` when the base was random-init (so it
can be rebuilt bit for bit). Pretrained bases are reloaded by the name or path the run used.
"""

from __future__ import annotations

from pathlib import Path

import peft
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedTokenizerBase

from kosum.methods.prefix_generation import enable_prefix_generation

ADAPTER_DIR = "adapter"
FULL_MODEL_DIR = "model"
BASE_MODEL_DIR = "base_model"
MERGED_MODEL_DIR = "merged"


def load_trained(
    run_or_adapter: str | Path, base_name_or_path: str | None = None
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Load a run directory, or an adapter/model folder directly, ready for generation.

    `base_name_or_path` overrides the base model recorded in the adapter config.
    """
    path = Path(run_or_adapter)
    for candidate in (path / ADAPTER_DIR, path / FULL_MODEL_DIR, path):
        if (candidate / "adapter_config.json").exists():
            return _load_adapter(candidate, base_name_or_path), AutoTokenizer.from_pretrained(
                candidate
            )
        if (candidate / "config.json").exists():
            model = AutoModelForSeq2SeqLM.from_pretrained(candidate, dtype=torch.float32)
            return model.eval(), AutoTokenizer.from_pretrained(candidate)
    raise FileNotFoundError(
        f"{path} holds no trained model: expected {ADAPTER_DIR}/adapter_config.json, "
        f"{FULL_MODEL_DIR}/config.json, or an adapter/model folder"
    )


def _load_adapter(adapter_dir: Path, base_name_or_path: str | None) -> torch.nn.Module:
    local_base = adapter_dir.parent / BASE_MODEL_DIR
    revision = None  # a base given by the caller is loaded as given
    if base_name_or_path is None:
        recorded = peft.PeftConfig.from_pretrained(adapter_dir)
        if local_base.exists():
            base_name_or_path = str(local_base)
        else:  # the hub revision the run trained on (kosum records it), not the newest
            base_name_or_path, revision = recorded.base_model_name_or_path, recorded.revision
    if not base_name_or_path:
        raise FileNotFoundError(
            f"{adapter_dir}: the adapter names no base model and {local_base} does not exist; "
            "pass the base model's name or path"
        )
    base = AutoModelForSeq2SeqLM.from_pretrained(
        base_name_or_path, revision=revision, dtype=torch.float32
    )
    model = peft.PeftModel.from_pretrained(base, adapter_dir)
    return enable_prefix_generation(model).eval()
