"""Whitespace normalisation shared by every data source (AI-Hub JSON, CSV, JSONL).

The rule reproduces the competition CSV exactly (checked on all 350 bundled samples): remove the
zero-width characters U+200B, U+200C, U+200D and U+FEFF, then collapse every run of whitespace
(Python's `str.split()` definition, so the source layout's "\\n  " line breaks, tabs, U+3000 and
NBSP included) to one space and strip the ends.

No Unicode normalisation form is applied on purpose: AI-Hub text is already precomposed Hangul,
and NFC would rewrite the CJK compatibility ideographs (U+F900 block) that some articles use for
Hanja, which the competition CSV keeps as they are.

Not for: tokenisation, sentence splitting or any content cleaning beyond whitespace.
"""

from __future__ import annotations

# Bump when the rule changes: source fingerprints include it, so cached tokenised datasets built
# with the old rule are not reused.
NORMALIZATION_VERSION = "1"

ZERO_WIDTH = "\u200b\u200c\u200d\ufeff"


def normalize_text(text: str) -> str:
    """Remove zero-width characters, collapse whitespace runs to one space, strip."""
    for char in ZERO_WIDTH:  # `in` + `replace` is ~6x faster than `str.translate` on Hangul
        if char in text:
            text = text.replace(char, "")
    return " ".join(text.split())
