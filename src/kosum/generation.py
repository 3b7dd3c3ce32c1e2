"""Decoding settings (`conf/generation/*.yaml`) and the post-processing the seed applied.

`generate` holds keyword arguments for `model.generate()` unchanged (num_beams, do_sample,
min_length, max_length, ...); `first_sentence` keeps only the first sentence of each output,
as the seed did after its 8-beam + sampling decoding. The sentence splitter is Korean-aware
(`kosum.text.sentences`); docs/inference.md compares it with the seed's nltk Punkt.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
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

    @property
    def samples(self) -> bool:
        return bool(self.generate.get("do_sample"))

    @contextmanager
    def seeded(self, seed: int, positions: Sequence[int]) -> Iterator[None]:
        """Sampling inside draws from torch's generators seeded with (`seed`, the batch's example
        positions), and leaves their state as it was: the same weights and batch give the same
        summaries whatever drew random numbers before (training's dropout, an earlier
        validation), and generating consumes none of training's random stream. Without
        sampling, nothing is touched."""
        if not self.samples:
            yield
            return
        state = np.random.SeedSequence([seed, *map(int, positions)]).generate_state(2)
        devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(state[0]) << 32 | int(state[1]))
            yield
