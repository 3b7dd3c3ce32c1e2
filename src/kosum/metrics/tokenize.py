"""Korean ROUGE tokenisation: the normalisation and Mecab morphemes the competition scored with.

Google's rouge-score tokenizer keeps only `[a-z0-9]`, so every Hangul character vanishes and
Korean summaries score 0. Here text is lowercased, every character outside `a-z0-9` and the Hangul
syllables 가-힣 becomes a space, and the rest is split into Mecab (mecab-ko-dic) morpheme surface
forms, as konlpy's `Mecab().morphs` would return them.

Mecab is slow on one huge string, so text is tokenised line by line; results are cached per
unique string because references are re-scored every validation epoch. The Tagger is created
lazily, once per process and thread (a forked DataLoader worker builds its own on first use).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from functools import lru_cache

import mecab_ko

_NON_TOKEN_RE = re.compile(r"[^a-z0-9가-힣]+")
# A sentence ends at a newline, or at `.`, `?` or `!` followed by whitespace.
_SENTENCE_END_RE = re.compile(r"(?<=[.?!])\s+")
# Entries per cache: a validation set's predictions and references, at well under 1 KB each for
# news-length texts (tokens are interned, so a repeated morpheme is stored once).
CACHE_SIZE = 1 << 17

_local = threading.local()


def _tagger() -> mecab_ko.Tagger:
    """This process's and thread's Tagger (MeCab taggers must not be shared across threads)."""
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:
        # `-Owakati` prints only the surface forms, space-separated: the cheapest output format.
        _local.tagger = mecab_ko.Tagger("-Owakati")
        _local.pid = pid
    return _local.tagger


def normalize(text: str) -> str:
    """Lowercase and replace every run of characters outside `a-z0-9가-힣` by one space."""
    return _NON_TOKEN_RE.sub(" ", text.lower()).strip()


@lru_cache(maxsize=CACHE_SIZE)
def morphs(text: str) -> tuple[str, ...]:
    """Cached morpheme tuple of `text` (normalised, then tokenised line by line)."""
    tagger = _tagger()
    tokens: list[str] = []
    for line in text.splitlines():
        normalized = normalize(line)
        if normalized:
            tokens.extend(map(sys.intern, tagger.parse(normalized).split()))
    return tuple(tokens)


def tokenize_korean(text: str) -> list[str]:
    """Mecab morphemes of `text` after ROUGE normalisation, e.g. "BTS가 1위" → bts 가 1 위."""
    return list(morphs(text))


def split_sentences(text: str) -> list[str]:
    """Sentences of the raw (not yet normalised) text, for ROUGE-Lsum.

    Splits on newlines and after `.`, `?` or `!` followed by whitespace; empty pieces are
    dropped. Decimals ("3.5") stay whole; abbreviations followed by a space ("U.S. 정부") split.
    """
    return [
        sentence
        for line in text.splitlines()
        for sentence in _SENTENCE_END_RE.split(line.strip())
        if sentence
    ]


class KoreanTokenizer:
    """rouge-score tokenizer: `rouge_scorer.RougeScorer(types, tokenizer=KoreanTokenizer())`."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize_korean(text)
