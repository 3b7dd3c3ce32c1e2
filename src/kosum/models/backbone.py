"""Load the base seq2seq model and its tokenizer exactly as a user with a hub cache would.

A `model=` config names either a pretrained checkpoint (`name_or_path`: a hub id such as
`lcw99/t5-large-korean-text-summary`, resolved from the local hub cache, or a local folder) or a
random-init architecture (`init_config`, used by `tiny_t5` in tests and the offline demo, with a
byte-level BPE tokenizer trained on the run's own training texts).

Security: `trust_remote_code` is off unless the config turns it on; weights come from
`model.safetensors` when the checkpoint has it, and transformers reads a `pytorch_model.bin`
with weights-only unpickling otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5ForConditionalGeneration,
)

from kosum.errors import ConfigError, InputError
from kosum.models.tokenizer_training import cached_bpe_tokenizer


@dataclass
class ModelSpec:
    """What `conf/model/*.yaml` describes (built with `_target_`).

    Exactly one of `name_or_path` (pretrained) and `init_config` (random init) is set.
    `tokenizer_vocab_size` applies to random-init models only (their tokenizer is trained).
    """

    name_or_path: str | None = None
    init_config: dict[str, Any] | None = None
    tokenizer_name_or_path: str | None = None
    tokenizer_vocab_size: int = 4000
    revision: str | None = None
    trust_remote_code: bool = False
    # Weights that exist only as pickles (pytorch_model.bin) are refused unless this is set
    # (then read with weights-only unpickling): safetensors cannot run code, pickles can.
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if (self.name_or_path is None) == (self.init_config is None):
            raise InputError(
                "model config: set exactly one of model.name_or_path (pretrained checkpoint) "
                f"and model.init_config (random init); got name_or_path={self.name_or_path!r}, "
                f"init_config={'set' if self.init_config else None}"
            )

    @property
    def is_random_init(self) -> bool:
        return self.init_config is not None


def load_tokenizer(
    spec: ModelSpec,
    training_texts: Callable[[], list[str]],
    corpus_key: str,
    cache_dir: str | Path,
) -> PreTrainedTokenizerBase:
    """The tokenizer for `spec`; a random-init model's is trained on `training_texts` (cached
    under `corpus_key`, so the texts are only produced on the first run)."""
    if spec.is_random_init and spec.tokenizer_name_or_path is None:
        return cached_bpe_tokenizer(
            training_texts, spec.tokenizer_vocab_size, corpus_key, cache_dir
        )
    source = spec.tokenizer_name_or_path or spec.name_or_path
    try:
        return AutoTokenizer.from_pretrained(
            source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except OSError as error:
        raise OSError(_not_found_message("tokenizer", source)) from error


def load_model(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """Build or load the base model; random-init models take their vocabulary from `tokenizer`."""
    if spec.is_random_init:
        settings = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "decoder_start_token_id": tokenizer.pad_token_id,
            **dict(spec.init_config or {}),  # a vocab_size here: a real model's (its shape)
        }
        if settings["vocab_size"] < len(tokenizer):
            raise ConfigError(
                f"model.init_config.vocab_size={settings['vocab_size']} is smaller than the "
                f"run's tokenizer ({len(tokenizer)} tokens)"
            )
        return T5ForConditionalGeneration(T5Config(**settings))
    return load_pretrained(
        spec.name_or_path,
        revision=spec.revision,
        trust_remote_code=spec.trust_remote_code,
        allow_pickle=spec.allow_pickle,
    )


PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})


def refuse_pickled(folder: str | Path, allow_pickle: bool) -> None:
    """Refuse a local folder whose weights exist only as pickles, unless `allow_pickle`."""
    folder = Path(folder)
    if allow_pickle or not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(path.name for path in folder.iterdir() if path.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise InputError(
            f"{folder}: its weights are pickles only ({', '.join(pickled)}), which can run code "
            "when loaded; kosum loads safetensors. If you trust them: allow_pickle=true "
            "(model.allow_pickle=true for kosum-train), read with weights-only unpickling"
        )


def load_pretrained(
    name_or_path: str,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> PreTrainedModel:
    """`from_pretrained` in fp32, safetensors only unless `allow_pickle` (a local folder of
    pickles is refused naming them; a hub model without safetensors fails to load)."""
    refuse_pickled(name_or_path, allow_pickle)
    try:
        return AutoModelForSeq2SeqLM.from_pretrained(
            name_or_path,
            revision=revision,
            trust_remote_code=trust_remote_code,
            dtype=torch.float32,
            use_safetensors=None if allow_pickle else True,
        )
    except OSError as error:
        hint = (
            "" if allow_pickle else " (or it has no safetensors weights: model.allow_pickle=true)"
        )
        raise OSError(_not_found_message("model", name_or_path) + hint) from error


def model_skeleton(spec: ModelSpec) -> PreTrainedModel:
    """The base model's architecture on the meta device (shapes, no weights, nothing loaded but
    a pretrained model's config.json), for counting parameters before any data is read. A
    random-init model's vocabulary is taken as `tokenizer_vocab_size` (its trained tokenizer
    may come out smaller): only methods that train embeddings would notice."""
    if spec.is_random_init:
        config = T5Config(**{"vocab_size": spec.tokenizer_vocab_size, **(spec.init_config or {})})
    else:
        try:
            config = AutoConfig.from_pretrained(
                spec.name_or_path, revision=spec.revision, trust_remote_code=spec.trust_remote_code
            )
        except OSError as error:
            raise OSError(_not_found_message("model config", spec.name_or_path)) from error
    with torch.device("meta"):
        return AutoModelForSeq2SeqLM.from_config(config)


def _not_found_message(what: str, source: str | None) -> str:
    return (
        f"could not load the {what} {source!r}: it is neither a local folder nor in the hub "
        "cache (HF_HOME / HF_HUB_CACHE), and this machine may have no network. Download it once "
        "with `hf download <id>` on a machine with network, or point "
        "model.name_or_path at a local copy."
    )
