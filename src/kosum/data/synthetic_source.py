"""`data=synthetic`: the project's synthetic AI-Hub-format corpus, generated on first use.

The corpus is written once into the cache (keyed by its generator options) and then read by the
real AI-Hub loader, so tests and the demo exercise the same parsing path as real data.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from kosum.data.aihub import AihubSource
from kosum.data.example import LoadResult
from kosum.data.synthetic import generate_corpus

# Bump when `generate_corpus` writes different files for the same options: cached corpora
# (and the tokenised splits cached on them) are then rebuilt.
GENERATOR_VERSION = "2"  # 2: editorials' summaries restate three slots, not one


class SyntheticSource:
    def __init__(
        self,
        categories: list[str],
        docs_per_category: int,
        corpus_seed: int = 0,
        summary_field: str = "summary1",
        max_docs: int | None = None,
        cache_dir: str | Path = ".cache/kosum",
    ) -> None:
        self.options = {
            "categories": list(categories),
            "docs_per_category": docs_per_category,
            "seed": corpus_seed,
        }
        identity = {**self.options, "generator": GENERATOR_VERSION}
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        self.corpus_dir = Path(cache_dir) / "synthetic" / key
        self.reader_options = {
            "categories": list(categories),
            "summary_field": summary_field,
            "max_docs": max_docs,
        }

    def _reader(self) -> AihubSource:
        """The AI-Hub loader over the corpus, generating the corpus first if needed."""
        if not self.corpus_dir.exists():
            self._generate()
        return AihubSource(str(self.corpus_dir), **self.reader_options)

    def _generate(self) -> None:
        self.corpus_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{self.corpus_dir.name}-", dir=self.corpus_dir.parent)
        )
        generate_corpus(staging, **self.options)
        try:
            staging.rename(self.corpus_dir)
        except OSError:  # generated concurrently by another process
            shutil.rmtree(staging, ignore_errors=True)

    def fingerprint(self) -> str:
        return self._reader().fingerprint()

    def load(self) -> LoadResult:
        return self._reader().load()

    def describe(self) -> str:
        """The generator's options, as shown in errors and logs."""
        return f"SyntheticSource({self.options})"
