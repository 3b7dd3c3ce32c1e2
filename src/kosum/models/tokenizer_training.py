"""Train (and cache) a byte-level BPE tokenizer for the random-init `tiny_t5` model.

The real models ship their own tokenizer (pko-t5's byte-level BPE, 50,358 entries). Tests and the
offline demo cannot download it, so `tiny_t5` gets a tokenizer of the same kind trained on the
run's training texts. Special tokens follow pko-t5's ids: `<pad>`=0 (also the decoder start),
`</s>`=1, `<unk>`=2; `</s>` is appended to every encoded text as T5 expects.
Not for: the real models (they load their tokenizer by name or path).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]


def train_bpe_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` (deterministic for the same input)."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    eos_id = backend.token_to_id("</s>")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def cached_bpe_tokenizer(
    training_texts: Callable[[], list[str]], vocab_size: int, corpus_key: str, cache_dir: str | Path
) -> PreTrainedTokenizerBase:
    """The tokenizer trained on the corpus `corpus_key` names; trained and cached on first use.

    `training_texts` is called only on a cache miss, so a cached run never parses its data.
    """
    key = hashlib.sha256(f"bpe-v1|{vocab_size}|{corpus_key}".encode()).hexdigest()[:16]
    target = Path(cache_dir) / "tokenizers" / key
    if not (target / "tokenizer.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        train_bpe_tokenizer(training_texts(), vocab_size).save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process cached the same tokenizer first
            shutil.rmtree(staging, ignore_errors=True)
    return AutoTokenizer.from_pretrained(target)
