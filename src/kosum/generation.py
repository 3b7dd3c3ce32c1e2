"""Decoding settings (`conf/generation/*.yaml`) and the post-processing the seed applied.

`generate` holds keyword arguments for `model.generate()` unchanged (num_beams, do_sample,
min_length, max_length, ...); `first_sentence` keeps only the first sentence of each output,
as the seed did after its 8-beam + sampling decoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# A sentence ends at . ? ! (optionally followed by closing quotes/brackets) before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.?!])[\"'”’)\]]*\s+")


@dataclass
class GenerationSettings:
    generate: dict[str, Any] = field(default_factory=lambda: {"num_beams": 1, "max_length": 100})
    first_sentence: bool = False

    def postprocess(self, text: str) -> str:
        text = text.strip()
        return first_sentence(text) if self.first_sentence else text


def first_sentence(text: str) -> str:
    """The text up to and including its first sentence-final punctuation mark."""
    match = _SENTENCE_END.search(text)
    return text[: match.start()].strip() if match else text.strip()
