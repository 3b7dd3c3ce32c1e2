"""Decoding settings (`conf/generation/*.yaml`) and the post-processing the seed applied.

`generate` holds keyword arguments for `model.generate()` unchanged (num_beams, do_sample,
min_length, max_length, ...); `first_sentence` keeps only the first sentence of each output,
as the seed did after its 8-beam + sampling decoding. The sentence splitter is Korean-aware
(`kosum.text.sentences`); docs/inference.md compares it with the seed's nltk Punkt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kosum.text.sentences import first_sentence


@dataclass
class GenerationSettings:
    generate: dict[str, Any] = field(default_factory=lambda: {"num_beams": 1, "max_length": 100})
    first_sentence: bool = False

    def __post_init__(self) -> None:
        # Hydra hands `generate` over as a DictConfig: generate() checks list arguments
        # (`bad_words_ids`, `sequence_bias`, ...) with isinstance(list), which a ListConfig fails.
        if isinstance(self.generate, DictConfig):
            self.generate = OmegaConf.to_container(self.generate, resolve=True)

    def postprocess(self, text: str) -> str:
        text = text.strip()
        return first_sentence(text) if self.first_sentence else text
