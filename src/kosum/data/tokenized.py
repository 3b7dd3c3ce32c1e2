"""Tokenised splits held as flat int32 arrays, and their on-disk cache.

A split is stored as one `.npz` (token ids concatenated, plus offsets; read back with
`allow_pickle=False`, so a cache file can never run code) and one JSON with the ids,
references and categories. The cache key covers everything that changes the tokens: the
source's fingerprint, the split settings, the tokenizer, the maximum lengths and the prompt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from kosum.io import atomic_open, write_json


@dataclass
class TokenizedSplit(Dataset):
    """One split: token arrays plus what evaluation needs to score and report each example."""

    source_tokens: np.ndarray
    source_offsets: np.ndarray
    target_tokens: np.ndarray
    target_offsets: np.ndarray
    ids: list[str]
    references: list[str]
    categories: list[str | None]

    @classmethod
    def from_lists(
        cls,
        sources: Sequence[Sequence[int]],
        targets: Sequence[Sequence[int]],
        ids: list[str],
        references: list[str],
        categories: list[str | None],
    ) -> TokenizedSplit:
        source_tokens, source_offsets = _flatten(sources)
        target_tokens, target_offsets = _flatten(targets)
        return cls(source_tokens, source_offsets, target_tokens, target_offsets, ids, references,
                   categories)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "index": index,
            "input_ids": self.source_tokens[self.source_offsets[index] : self.source_offsets[index + 1]],
            "labels": self.target_tokens[self.target_offsets[index] : self.target_offsets[index + 1]],
        }

    def source_lengths(self) -> np.ndarray:
        return np.diff(self.source_offsets)

    def target_lengths(self) -> np.ndarray:
        return np.diff(self.target_offsets)

    def save(self, stem: Path) -> None:
        with atomic_open(stem.with_suffix(".npz"), "wb") as handle:
            np.savez(
                handle,
                source_tokens=self.source_tokens,
                source_offsets=self.source_offsets,
                target_tokens=self.target_tokens,
                target_offsets=self.target_offsets,
            )
        write_json(
            stem.with_suffix(".json"),
            {"ids": self.ids, "references": self.references, "categories": self.categories},
        )

    @classmethod
    def load(cls, stem: Path) -> TokenizedSplit:
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as arrays:
            tokens = {name: arrays[name] for name in arrays.files}
        meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        return cls(**tokens, ids=meta["ids"], references=meta["references"],
                   categories=meta["categories"])


def _flatten(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    flat = np.fromiter((t for r in rows for t in r), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets
