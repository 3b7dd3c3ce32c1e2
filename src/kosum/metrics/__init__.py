"""Korean ROUGE (Mecab morphemes, as the competition scored) and significance tests.

Google's rouge-score drops Hangul and scores Korean as 0; `compute_rouge` and friends tokenise
with `tokenize_korean` instead. See docs/metrics.md for the normalisation and conventions.
"""

from __future__ import annotations

from pathlib import Path

from kosum.metrics.rouge import (
    ROUGE_KEYS,
    RougeScore,
    clear_cache,
    compute_rouge,
    corpus_rouge,
    micro_average,
    rouge_per_example,
    score_pairs,
    summarize_scores,
)
from kosum.metrics.significance import bootstrap_ci, paired_bootstrap, paired_permutation
from kosum.metrics.tokenize import KoreanTokenizer, normalize, split_sentences, tokenize_korean


def evaluate_module_path() -> Path:
    """The `evaluate` metric script: `evaluate.load(str(evaluate_module_path()))` works offline."""
    return Path(__file__).resolve().parent / "kosum_rouge" / "kosum_rouge.py"


__all__ = [
    "ROUGE_KEYS",
    "KoreanTokenizer",
    "RougeScore",
    "bootstrap_ci",
    "clear_cache",
    "compute_rouge",
    "corpus_rouge",
    "evaluate_module_path",
    "micro_average",
    "normalize",
    "paired_bootstrap",
    "paired_permutation",
    "rouge_per_example",
    "score_pairs",
    "split_sentences",
    "summarize_scores",
    "tokenize_korean",
]
