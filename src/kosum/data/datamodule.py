"""The Lightning data module: source → split → prompt → tokens (cached) → length-grouped batches.

Any `ExampleSource` (AI-Hub folders/zips, CSV, JSONL) goes through the same path. The tokenised
splits are cached under `cache_dir`, keyed by everything that changes them, so a second run with
the same data, tokenizer, prompt and lengths reloads them without parsing a single file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from kosum.data.batching import LengthGroupedBatchSampler, Seq2SeqCollator
from kosum.data.example import ExampleSource, LoadResult, SummaryExample
from kosum.data.prompts import PromptTemplate
from kosum.data.split import split_examples
from kosum.data.tokenized import TokenizedSplit
from kosum.io import write_json

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
CACHE_FORMAT = "tokenized-v1"


class SummarizationDataModule(L.LightningDataModule):
    def __init__(
        self,
        source: ExampleSource,
        prompt: PromptTemplate,
        *,
        max_source_length: int = 1024,
        max_target_length: int = 128,
        batch_size: int = 4,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_salt: str = "kosum",
        use_official_split: bool = True,
        max_eval_examples: int | None = None,
        pad_to_max_length: bool = False,
        group_by_length: bool = True,
        cache_dir: str | Path = ".cache/kosum",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.source = source
        self.prompt = prompt
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.split_options = {
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "salt": split_salt,
            "use_official": use_official_split,
        }
        self.max_eval_examples = max_eval_examples
        self.pad_to_max_length = pad_to_max_length
        self.group_by_length = group_by_length
        self.cache_dir = Path(cache_dir)
        self.seed = seed
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.splits: dict[str, TokenizedSplit] = {}
        self.data_summary: dict[str, Any] = {}
        self._examples: dict[str, list[SummaryExample]] | None = None
        self._load_result: LoadResult | None = None

    # -- examples -----------------------------------------------------------------------------
    def corpus_key(self) -> str:
        """Identity of the split corpus (source + split settings), without parsing it."""
        payload = json.dumps([self.source.fingerprint(), self.split_options], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def examples(self) -> dict[str, list[SummaryExample]]:
        """Parse the source once and split it; skipped records are reported once, here."""
        if self._examples is None:
            self._load_result = self.source.load()
            if self._load_result.skipped:
                log.warning(self._load_result.skip_summary())
            self._examples = split_examples(self._load_result.examples, **self.split_options)
            if self.max_eval_examples is not None:
                for name in ("val", "test"):
                    self._examples[name] = self._examples[name][: self.max_eval_examples]
        return self._examples

    def training_texts(self) -> list[str]:
        """Texts a tokenizer may be trained on (train split: documents and summaries)."""
        train = self.examples()["train"]
        return [e.text for e in train] + [e.summary for e in train]

    # -- tokens -------------------------------------------------------------------------------
    def set_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def cache_key(self) -> str:
        assert self.tokenizer is not None
        payload = json.dumps(
            {
                "format": CACHE_FORMAT,
                "corpus": self.corpus_key(),
                "max_eval_examples": self.max_eval_examples,
                "tokenizer": _tokenizer_identity(self.tokenizer),
                "max_source_length": self.max_source_length,
                "max_target_length": self.max_target_length,
                "prompt": [self.prompt.template, self.prompt.apply_at],
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if self.tokenizer is None:
            raise RuntimeError("SummarizationDataModule.set_tokenizer() must be called before setup()")
        cache = self.cache_dir / "datasets" / self.cache_key()
        if (cache / "summary.json").exists():
            self.splits = {name: TokenizedSplit.load(cache / name) for name in SPLITS}
            self.data_summary = json.loads((cache / "summary.json").read_text(encoding="utf-8"))
            self.data_summary["cache"] = "hit"
            log.info("loaded tokenised splits from cache %s", cache)
            return
        examples = self.examples()
        for name in SPLITS:
            if not examples[name]:
                raise ValueError(f"the {name} split is empty: {self.source!r} gave too few documents")
            self.splits[name] = self._tokenize(examples[name], "train" if name == "train" else "inference")
            self.splits[name].save(cache / name)
        assert self._load_result is not None
        self.data_summary = {
            "examples": {name: len(split) for name, split in self.splits.items()},
            "by_category": self._load_result.by_category(),
            "skipped": len(self._load_result.skipped),
            "truncated_sources": {
                name: int((split.source_lengths() >= self.max_source_length).sum())
                for name, split in self.splits.items()
            },
        }
        write_json(cache / "summary.json", self.data_summary)
        self.data_summary["cache"] = "miss"
        log.info("tokenised %s and cached them at %s", self.data_summary["examples"], cache)

    def _tokenize(self, examples: list[SummaryExample], stage: str) -> TokenizedSplit:
        assert self.tokenizer is not None
        sources = self.tokenizer(
            [self.prompt.format(e.text, stage) for e in examples],
            max_length=self.max_source_length,
            truncation=True,
        )["input_ids"]
        targets = self.tokenizer(
            text_target=[e.summary for e in examples],
            max_length=self.max_target_length,
            truncation=True,
        )["input_ids"]
        return TokenizedSplit.from_lists(
            sources,
            targets,
            ids=[e.id for e in examples],
            references=[e.summary for e in examples],
            categories=[e.category for e in examples],
        )

    # -- loaders ------------------------------------------------------------------------------
    def _loader(self, name: str, batch_size: int, shuffle: bool) -> DataLoader:
        split = self.splits[name]
        assert self.tokenizer is not None
        collator = Seq2SeqCollator(
            self.tokenizer.pad_token_id,
            self.max_source_length if self.pad_to_max_length else None,
            self.max_target_length if self.pad_to_max_length else None,
        )
        sampler = LengthGroupedBatchSampler(
            split.source_lengths(),
            batch_size,
            shuffle=shuffle,
            seed=self.seed,
            group_by_length=self.group_by_length,
        )
        return DataLoader(
            split,
            batch_sampler=sampler,
            collate_fn=collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


def _tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of the tokenizer's full serialisation (vocabulary, merges, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256((text + tokenizer.__class__.__name__).encode()).hexdigest()[:16]
