"""The Lightning data module: source → split → prompt → tokens (cached) → length-grouped batches.

Any `ExampleSource` (AI-Hub folders/zips, CSV, JSONL) goes through the same path. The tokenised
splits are cached under `<cache_dir>/datasets/<cache_key>/`, keyed by everything that changes
them (the source's fingerprint — file names, sizes, mtimes and its options —, the split settings,
the tokenizer's serialisation, the maximum lengths and the prompt), so a second run with the same
settings reloads them without parsing a single file, and says so in the log and in
`data_summary["cache"]` ("hit" or "miss").
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from kosum.data.batching import BATCH_ORDER_VERSION, LengthGroupedBatchSampler, Seq2SeqCollator
from kosum.data.example import ExampleSource, LoadResult, SkippedRecord, SummaryExample
from kosum.data.prompts import PromptTemplate, Stage
from kosum.data.split import SPLIT_RULES_VERSION, hash_fraction, split_examples
from kosum.data.tokenized import TokenizedSplit, pack
from kosum.errors import InputError
from kosum.io import write_json

log = logging.getLogger(__name__)

# Skipped records listed in the data summary (and so in every run's results.json); `skipped`
# counts them all (a folder and its zip under one root skip every document as a duplicate).
SKIPPED_RECORDS_KEPT = 200
SPLITS = ("train", "val", "test")
# Bump when tokenisation or the cache layout changes, so old entries are not reused.
CACHE_FORMAT = "tokenized-v2"
# Texts per tokenizer call: big enough for the Rust tokenizer's parallelism, small enough that
# one chunk's Python lists of token ids stay small (a whole corpus's would take gigabytes).
ENCODE_CHUNK = 2048


class SummarizationDataModule(L.LightningDataModule):
    """Splits of one source, tokenised once per (data, tokenizer, lengths, prompt) and cached.

    Call `set_tokenizer()` before `setup()`: the tokenizer may itself be trained on
    `training_texts()`, so it cannot be a constructor argument.
    """

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
        whole_source_as_test: bool = False,
        categories: Sequence[str] | None = None,
        test_categories: Sequence[str] | None = None,
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
        # Evaluation of a whole file (kosum-eval split=all): no split, every example is "test".
        self.whole_source_as_test = whole_source_as_test
        # With test categories of their own, the source loads both sets and the splits are
        # filtered after the split (by document, so a test document's side never depends on
        # which categories are trained on): train and validation to `categories`, test to
        # `test_categories`.
        self.category_filter = (
            None
            if test_categories is None
            else {
                "train": _names(categories),
                "val": _names(categories),
                "test": _names(test_categories),
            }
        )
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self._resume_state: dict[str, int] | None = None
        self.splits: dict[str, TokenizedSplit] = {}
        self.data_summary: dict[str, Any] = {}
        self._examples: dict[str, list[SummaryExample]] | None = None
        self._load_result: LoadResult | None = None
        self._corpus_key: str | None = None

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], **arguments: Any
    ) -> SummarizationDataModule:
        """The data module of a data config (`conf/data_loader.yaml` with a `conf/data/` file):
        its keys named like this constructor's parameters, besides `arguments`. A data config
        lists each setting once; its source's own keys (`root`, `path`, ...) go to the source."""
        parameters = inspect.signature(cls).parameters
        chosen = {k: v for k, v in settings.items() if k in parameters and k not in arguments}
        return cls(**chosen, **arguments)

    # -- examples -----------------------------------------------------------------------------
    def corpus_key(self) -> str:
        """Identity of the split corpus (source + split settings), without parsing it.

        Computed once per data module: the fingerprint stats every file (~0.7 s for 160k), and a
        run asks for it twice (tokenizer cache, then dataset cache).
        """
        if self._corpus_key is None:
            split: Any = "whole source as test" if self.whole_source_as_test else self.split_options
            identity = [self.source.fingerprint(), split, SPLIT_RULES_VERSION]
            if self.category_filter is not None:
                identity.append(self.category_filter)
            payload = json.dumps(identity, sort_keys=True)
            self._corpus_key = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return self._corpus_key

    def examples(self) -> dict[str, list[SummaryExample]]:
        """Parse the source once and split it; skipped records are reported once, here."""
        if self._examples is None:
            self._load_result = self.source.load()
            if self._load_result.skipped:
                log.warning(self._load_result.skip_summary())
            if self.whole_source_as_test:
                self._examples = {name: [] for name in SPLITS}
                self._examples["test"] = list(self._load_result.examples)
            else:
                self._examples = split_examples(self._load_result.examples, **self.split_options)
                for name, kept in (self.category_filter or {}).items():
                    if kept is not None:
                        self._examples[name] = [
                            e for e in self._examples[name] if e.category in kept
                        ]
            if self.max_eval_examples is not None:
                for name in ("val", "test"):
                    self._examples[name] = _stable_subset(
                        self._examples[name], self.max_eval_examples
                    )
        return self._examples

    def training_texts(self) -> list[str]:
        """Texts a tokenizer may be trained on (train split: documents and summaries)."""
        train = self.examples()["train"]
        return [e.text for e in train] + [e.summary for e in train]

    # -- tokens -------------------------------------------------------------------------------
    def set_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def cache_key(self) -> str:
        """Key of the tokenised splits: corpus (source fingerprint + split settings), eval caps,
        tokenizer, maximum lengths and prompt."""
        if self.tokenizer is None:
            raise RuntimeError("set_tokenizer() must be called before cache_key()")
        payload = json.dumps(
            {
                "format": CACHE_FORMAT,
                "corpus": self.corpus_key(),
                # "by id hash": the subset rule (caches of the former first-N rule are stale)
                "max_eval_examples": None
                if self.max_eval_examples is None
                else [self.max_eval_examples, "by id hash"],
                "tokenizer": _tokenizer_identity(self.tokenizer),
                "max_source_length": self.max_source_length,
                "max_target_length": self.max_target_length,
                "prompt": [self.prompt.template, self.prompt.apply_at],
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def setup(self, stage: str | None = None) -> None:
        """Tokenised splits from the cache, or parse, split, tokenise and cache them."""
        if self.splits:
            return
        if self.tokenizer is None:
            raise RuntimeError("set_tokenizer() must be called before setup()")
        started = time.perf_counter()
        cache = self.cache_dir / "datasets" / self.cache_key()
        if self._load_cache(cache):
            log.info(
                "tokenised-dataset cache hit: reloaded %s examples from %s in %.1f s "
                "(source not parsed)",
                self.data_summary["examples"],
                cache,
                time.perf_counter() - started,
            )
            return
        examples = self.examples()
        needed = ("test",) if self.whole_source_as_test else SPLITS
        empty = [name for name in needed if not examples[name]]
        if empty:
            sizes = ", ".join(f"{name} {len(examples[name])}" for name in SPLITS)
            raise InputError(
                f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty "
                f"({sizes} examples from {self.source.describe()}): add documents, or check "
                f"val_fraction/test_fraction and max_eval_examples"
            )
        truncated: dict[str, dict[str, int]] = {"truncated_sources": {}, "truncated_targets": {}}
        for name in SPLITS:
            split, cut_sources, cut_targets = self._tokenize(
                examples[name], "train" if name == "train" else "inference"
            )
            split.save(cache / name)
            self.splits[name] = split
            truncated["truncated_sources"][name] = cut_sources
            truncated["truncated_targets"][name] = cut_targets
        assert self._load_result is not None
        self.data_summary = {
            "examples": {name: len(split) for name, split in self.splits.items()},
            "by_category": self._load_result.by_category(),
            "skipped": len(self._load_result.skipped),
            # listed again on a cache hit (the source is not parsed then) and in results.json
            "skipped_records": [
                {"path": record.path, "reason": record.reason}
                for record in self._load_result.skipped[:SKIPPED_RECORDS_KEPT]
            ],
            **truncated,
        }
        # Written last: its presence marks a complete entry.
        write_json(cache / "summary.json", self.data_summary)
        self.data_summary["cache"] = "miss"
        log.info(
            "tokenised-dataset cache miss: tokenised %s examples in %.1f s, cached at %s",
            self.data_summary["examples"],
            time.perf_counter() - started,
            cache,
        )

    def _load_cache(self, cache: Path) -> bool:
        """Load a complete cache entry into `splits`/`data_summary`; False when there is none.

        A damaged entry (a file deleted or cut short) is reported and rebuilt, not fatal.
        """
        if not (cache / "summary.json").exists():
            return False
        try:
            splits = {name: TokenizedSplit.load(cache / name) for name in SPLITS}
            summary = json.loads((cache / "summary.json").read_bytes())
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("tokenised-dataset cache %s is damaged (%s); rebuilding it", cache, exc)
            return False
        self.splits = splits
        self.data_summary = {**summary, "cache": "hit"}
        skipped = [SkippedRecord(**record) for record in summary.get("skipped_records", [])]
        if skipped:
            more = summary["skipped"] - len(skipped)
            log.warning(
                LoadResult([], skipped).skip_summary()
                + (f"\n  ... and {more} more (listed when the source is parsed)" if more else "")
            )
        return True

    def _tokenize(
        self, examples: list[SummaryExample], stage: Stage
    ) -> tuple[TokenizedSplit, int, int]:
        """The split's tokens, and how many sources and targets were truncated."""
        sources, source_offsets, cut_sources = self._encode(
            (self.prompt.format(e.text, stage) for e in examples), self.max_source_length, False
        )
        targets, target_offsets, cut_targets = self._encode(
            (e.summary for e in examples), self.max_target_length, True
        )
        split = TokenizedSplit(
            sources,
            source_offsets,
            targets,
            target_offsets,
            ids=[e.id for e in examples],
            references=[e.summary for e in examples],
            categories=[e.category for e in examples],
        )
        return split, cut_sources, cut_targets

    def _encode(
        self, texts: Iterator[str], max_length: int, target: bool
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Packed token ids of `texts` (see `pack`) and how many were truncated to `max_length`.

        Each chunk is encoded untruncated first, so truncation is counted exactly (a text of
        exactly `max_length` tokens is not truncated); only the too-long texts are encoded again
        with truncation, which keeps the special tokens the tokenizer adds (T5's final `</s>`).
        """
        truncated = 0

        def chunks() -> Iterator[list[list[int]]]:
            nonlocal truncated
            while batch := list(islice(texts, ENCODE_CHUNK)):
                rows = self._call_tokenizer(batch, target)
                long = [i for i, row in enumerate(rows) if len(row) > max_length]
                cut = self._call_tokenizer([batch[i] for i in long], target, max_length)
                for i, row in zip(long, cut, strict=True):
                    rows[i] = row
                truncated += len(long)
                yield rows

        tokens, offsets = pack(chunks())
        return tokens, offsets, truncated

    def _call_tokenizer(
        self, texts: list[str], target: bool, max_length: int | None = None
    ) -> list[list[int]]:
        if not texts:
            return []
        assert self.tokenizer is not None
        encoded = self.tokenizer(
            **{"text_target" if target else "text": texts},
            max_length=max_length,
            truncation=max_length is not None,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,  # no "longer than model_max_length" warning: long texts are cut next
        )
        return encoded["input_ids"]

    # -- loaders ------------------------------------------------------------------------------
    def _loader(self, name: str, batch_size: int, shuffle: bool) -> DataLoader:
        split = self.splits[name]
        assert self.tokenizer is not None
        if self.tokenizer.pad_token_id is None:
            raise InputError(f"the tokenizer {type(self.tokenizer).__name__} has no pad token")
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
            num_replicas=self._world_size(),
            rank=self.trainer.global_rank if self.trainer is not None else 0,
        )
        if shuffle and self._resume_state:
            state, self._resume_state = self._resume_state, None
            self._start_where_saved(sampler, state)
        return DataLoader(
            split,
            batch_sampler=sampler,
            collate_fn=collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # A private generator: creating an iterator then draws nothing from the global RNG,
            # whose state (dropout) a resumed run restores from the checkpoint.
            generator=torch.Generator().manual_seed(self.seed),
        )

    # -- resuming mid-epoch -------------------------------------------------------------------
    def _start_where_saved(self, sampler: LengthGroupedBatchSampler, state: dict[str, int]) -> None:
        """Start `sampler` where the checkpointed run stood. Lightning draws the first batch of
        a fit (prefetching, also when `estimated_stepping_batches` sizes the schedule) before
        it restores its loops and calls `set_epoch`, and on a resume it keeps that iterator for
        the first epoch: so the sampler must already be at the right epoch here."""
        epoch, done = state["epoch"], state["train_batches_done"]
        # older checkpoints lack the flag; they ran whole epochs (no limit_train_batches)
        if state.get("epoch_finished", done >= len(sampler)):
            sampler.set_epoch(epoch + 1)  # saved after the epoch's last batch
            return
        sampler.set_epoch(epoch)
        examples = len(self.splits["train"])
        if state.get("batch_order") != BATCH_ORDER_VERSION:
            reason = "was written with another batch order (kosum version)"
        elif state.get("train_examples", examples) != examples:
            reason = f"trained on {state['train_examples']} examples, this run has {examples}"
        elif (world_size := state.get("world_size", 1)) != self._world_size():
            reason = f"was written by {world_size} processes, this run has {self._world_size()}"
        else:
            sampler.resume_at(epoch, done)
            return
        # skipping by count would skip other batches than the ones trained on
        log.warning(
            "the checkpoint %s: epoch %d restarts from its first batch instead of continuing "
            "mid-epoch, so no example is skipped; the run will not match an uninterrupted one",
            reason,
            epoch,
        )

    def state_dict(self) -> dict[str, int]:
        """Saved in every checkpoint of a fit (after a training step, at the end of an epoch or
        of its validation): where in which epoch training stood."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {
            "epoch": trainer.current_epoch,
            "train_batches_done": progress.processed,
            # against Lightning's count, which limit_train_batches lowers
            "epoch_finished": int(progress.processed >= trainer.num_training_batches),
            "train_examples": len(self.splits["train"]),
            "batch_order": BATCH_ORDER_VERSION,
            "world_size": trainer.world_size,
        }

    def _world_size(self) -> int:
        """The processes sharing each epoch (DDP); 1 outside a trainer."""
        return self.trainer.world_size if self.trainer is not None else 1

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume_state = dict(state_dict) or None

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


def _tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of the tokenizer's full serialisation (vocabulary, merges, normaliser, pre- and
    post-processor, added and special tokens) and class.

    The backend's `truncation` and `padding` entries are left out: transformers sets them on
    every call, so they hold the last call's arguments, and keeping them made a tokenizer that
    had just tokenised one split miss the cache it had written.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        serialised = json.dumps(state, sort_keys=True, ensure_ascii=False).encode()
    else:  # a Python tokenizer: its saved files (vocabulary, sentencepiece model, config)
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer.save_pretrained(tmp)
            serialised = b"".join(
                path.name.encode() + b"\0" + path.read_bytes()
                for path in sorted(Path(tmp).iterdir())
            )
    digest = hashlib.sha256(type(tokenizer).__name__.encode() + b"\0" + serialised)
    return digest.hexdigest()[:16]


def _names(categories: Sequence[str] | None) -> list[str] | None:
    return None if categories is None else list(categories)


def _stable_subset(examples: list[SummaryExample], size: int) -> list[SummaryExample]:
    """`size` examples picked by a hash of their id, in their original order: the same for every
    run, and spread over categories (the first N would be whole category folders)."""
    if len(examples) <= size:
        return examples
    chosen = set(sorted(range(len(examples)), key=lambda i: hash_fraction(examples[i].id))[:size])
    return [example for i, example in enumerate(examples) if i in chosen]
