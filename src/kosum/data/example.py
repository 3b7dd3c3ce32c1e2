"""The in-memory record every data source produces, and the report of what a load skipped.

All sources (AI-Hub 582 JSON folders/zips, competition CSV, JSONL) yield `SummaryExample`s and a
`LoadResult`, so the data module, the statistics command and inference never care where the
documents came from. Not for: tokenisation or batching (see `kosum.data.datamodule`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SummaryExample:
    """One document and its reference summary.

    `doc_id` groups passages of one source document so a split never separates them (AI-Hub has
    several passages per article); it defaults to `id`. `split` is the dataset's own split when
    the source has one ("train" or "val", e.g. AI-Hub's Training/Validation folders), else None.
    `summary` may be "" for inference-only inputs (competition test file `id,text`).
    """

    id: str
    text: str
    summary: str
    category: str | None = None
    doc_id: str = ""
    split: str | None = None

    def __post_init__(self) -> None:
        if not self.doc_id:
            object.__setattr__(self, "doc_id", self.id)


@dataclass(frozen=True)
class SkippedRecord:
    """A record that was not loaded: where it was and why (shown to the user, counted)."""

    path: str
    reason: str


@dataclass
class LoadResult:
    """Examples loaded from a source, plus everything that was skipped on the way."""

    examples: list[SummaryExample]
    skipped: list[SkippedRecord] = field(default_factory=list)

    def by_category(self) -> dict[str, int]:
        return dict(sorted(Counter(e.category or "unknown" for e in self.examples).items()))

    def skip_summary(self, limit: int = 20) -> str:
        """A human-readable block listing the skipped records (first `limit` of them)."""
        if not self.skipped:
            return "no records skipped"
        lines = [f"skipped {len(self.skipped)} record(s):"]
        lines += [f"  {s.path}: {s.reason}" for s in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


class ExampleSource(Protocol):
    """What the data module needs from a source.

    `fingerprint()` must be cheap (file names, sizes, mtimes and the source's options, never the
    parsed content): it keys the tokenised-dataset cache, so a cached run does not parse at all.
    """

    def fingerprint(self) -> str: ...

    def load(self) -> LoadResult: ...

    def describe(self) -> str:
        """Where the examples come from (a path, roots and filters), for messages."""
        ...
