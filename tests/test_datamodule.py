"""The data module: tokenised-dataset cache, prompts, padding, length-grouped batches, truncation.

Everything runs on a small synthetic AI-Hub corpus and a byte-level BPE tokenizer trained on it
here (no model hub), so the module is fast and needs no real data.
"""

from __future__ import annotations

import csv
import inspect
import logging
import os
import shutil
from itertools import chain
from pathlib import Path

import numpy as np
import pytest
from lightning.fabric.utilities.data import _set_sampler_epoch
from omegaconf import OmegaConf
from transformers import PreTrainedTokenizerBase

import kosum.data.datamodule as datamodule_module
from kosum.data.aihub import AihubSource
from kosum.data.batching import (
    BATCH_ORDER_VERSION,
    LABEL_PAD,
    LengthGroupedBatchSampler,
    Seq2SeqCollator,
)
from kosum.data.datamodule import SPLITS, SummarizationDataModule
from kosum.data.example import LoadResult
from kosum.data.prompts import PromptTemplate
from kosum.data.synthetic import generate_corpus
from kosum.data.tables import TableSource
from kosum.data.tokenized import TokenizedSplit
from kosum.models.tokenizer_training import train_bpe_tokenizer
from kosum.training.pipeline import build_datamodule

PROMPT = PromptTemplate("다음 글을 한 문장으로 요약: {text}", apply_at="inference")


class RecordingSource:
    """An `ExampleSource` over AI-Hub files that counts `load()` calls and can forbid them."""

    def __init__(self, root: Path, allow_load: bool = True) -> None:
        self.inner = AihubSource(root)
        self.allow_load = allow_load
        self.loads = 0

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def describe(self) -> str:
        return self.inner.describe()

    def load(self) -> LoadResult:
        if not self.allow_load:
            raise AssertionError("the source was parsed although the cache should have hit")
        self.loads += 1
        return self.inner.load()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_corpus(tmp_path_factory.mktemp("corpus"), docs_per_category=4)


@pytest.fixture(scope="module")
def tokenizer(corpus: Path) -> PreTrainedTokenizerBase:
    examples = AihubSource(corpus).load().examples
    return train_bpe_tokenizer([e.text for e in examples] + [e.summary for e in examples], 1000)


def _datamodule(
    source,
    tokenizer: PreTrainedTokenizerBase,
    cache_dir: Path,
    prompt: PromptTemplate = PROMPT,
    **options,
) -> SummarizationDataModule:
    datamodule = SummarizationDataModule(source, prompt, cache_dir=cache_dir, **options)
    datamodule.set_tokenizer(tokenizer)
    return datamodule


# -- cache ------------------------------------------------------------------------------------
def test_second_run_reloads_identical_splits_from_cache_without_parsing(
    corpus, tokenizer, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="kosum.data.datamodule")
    source = RecordingSource(corpus)
    first = _datamodule(source, tokenizer, tmp_path)
    first.setup()
    assert source.loads == 1
    assert first.data_summary["cache"] == "miss"
    assert "cache miss" in caplog.text

    caplog.clear()
    # The same tokenizer object, which has just tokenised (and so changed its backend's
    # truncation settings), must still find the entry.
    second = _datamodule(RecordingSource(corpus, allow_load=False), tokenizer, tmp_path)
    second.setup()
    assert second.data_summary["cache"] == "hit"
    hits = [r for r in caplog.records if "cache hit" in r.getMessage()]
    assert hits and hits[0].levelno >= logging.INFO and "source not parsed" in hits[0].getMessage()
    assert {k: v for k, v in second.data_summary.items() if k != "cache"} == {
        k: v for k, v in first.data_summary.items() if k != "cache"
    }
    for name in SPLITS:
        a, b = first.splits[name], second.splits[name]
        for array in ("source_tokens", "source_offsets", "target_tokens", "target_offsets"):
            assert np.array_equal(getattr(a, array), getattr(b, array)), (name, array)
        assert (a.ids, a.references, a.categories) == (b.ids, b.references, b.categories)
        assert len(b) > 0


def test_skipped_records_are_listed_on_a_cache_hit_too(
    corpus, tokenizer, tmp_path, caplog, monkeypatch
):
    """The source is not parsed on a cache hit; the files it skipped are still listed (log
    and data summary, hence results.json), the first SKIPPED_RECORDS_KEPT of them."""
    monkeypatch.setattr(datamodule_module, "SKIPPED_RECORDS_KEPT", 1)
    root = tmp_path / "corpus"
    shutil.copytree(corpus, root)
    bad = root / "REPORT-news_r-99998-00001.json"
    bad.write_text('{"Meta(Acqusition)": {', encoding="utf-8")
    (root / "REPORT-news_r-99999-00001.json").write_text("", encoding="utf-8")
    for allow_load in (True, False):
        caplog.clear()
        datamodule = _datamodule(
            RecordingSource(root, allow_load=allow_load), tokenizer, tmp_path / "cache"
        )
        datamodule.setup()
        summary = datamodule.data_summary
        assert summary["cache"] == ("miss" if allow_load else "hit")
        assert summary["skipped"] == 2
        [record] = summary["skipped_records"]
        assert record["path"].endswith(bad.name) and "invalid JSON" in record["reason"]
        assert f"  {record['path']}: invalid JSON" in caplog.text
    assert "... and 1 more (listed when the source is parsed)" in caplog.text


def test_damaged_cache_entry_is_rebuilt(corpus, tokenizer, tmp_path, caplog):
    first = _datamodule(AihubSource(corpus), tokenizer, tmp_path)
    first.setup()
    entry = tmp_path / "datasets" / first.cache_key()
    (entry / "train.npz").write_bytes(b"not a zip")
    second = _datamodule(AihubSource(corpus), tokenizer, tmp_path)
    second.setup()
    assert second.data_summary["cache"] == "miss"
    assert "damaged" in caplog.text
    assert np.array_equal(second.splits["train"].source_tokens, first.splits["train"].source_tokens)
    assert TokenizedSplit.load(entry / "train").ids == first.splits["train"].ids


def test_cache_key_covers_everything_that_changes_the_tokens(corpus, tokenizer, tmp_path):
    files = tmp_path / "files"
    shutil.copytree(corpus, files)

    def key(source=None, tok=tokenizer, prompt=PROMPT, **options) -> str:
        return _datamodule(
            source or AihubSource(files), tok, tmp_path, prompt, **options
        ).cache_key()

    base = key()
    tokenizer("본문", max_length=4, truncation=True)  # per-call backend state is not identity
    assert key() == base
    variants = {
        "prompt template": key(prompt=PromptTemplate("요약: {text}", apply_at="inference")),
        "prompt apply_at": key(prompt=PromptTemplate(PROMPT.template, apply_at="both")),
        "max_source_length": key(max_source_length=512),
        "max_target_length": key(max_target_length=64),
        "tokenizer": key(tok=train_bpe_tokenizer(["다른 말뭉치로 학습한 토크나이저"] * 5, 300)),
        "categories": key(AihubSource(files, categories=["news_r", "paper"])),
        "summary_field": key(AihubSource(files, summary_field="summary2")),
        "set": key(AihubSource(files, set="2~3sent")),
        "max_docs": key(AihubSource(files, max_docs=10)),
        "val_fraction": key(val_fraction=0.2),
        "split_salt": key(split_salt="other"),
        "official split": key(use_official_split=False),
        "max_eval_examples": key(max_eval_examples=3),
    }
    one_file = next(files.rglob("*.json"))
    stat = one_file.stat()
    os.utime(one_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    variants["a file's mtime"] = key()
    one_file.rename(one_file.with_name("REPORT-news_r-99999-00001.json"))
    variants["a file's name"] = key()
    unchanged = [name for name, value in variants.items() if value == base]
    assert not unchanged, f"cache key ignores {unchanged}"
    assert len(set(variants.values())) == len(variants)


# -- prompt, padding, truncation ---------------------------------------------------------------
@pytest.mark.parametrize("apply_at", ["train", "inference", "both"])
def test_prompt_is_applied_per_split_as_apply_at_says(corpus, tokenizer, tmp_path, apply_at):
    prompt = PromptTemplate("다음 글을 한 문장으로 요약: {text}", apply_at=apply_at)
    datamodule = _datamodule(AihubSource(corpus), tokenizer, tmp_path, prompt)
    datamodule.setup()
    prefix = "다음 글을 한 문장으로 요약: "
    for name in SPLITS:
        split = datamodule.splits[name]
        texts = [
            tokenizer.decode(split[i]["input_ids"], skip_special_tokens=True)
            for i in range(len(split))
        ]
        expected = prompt.applies_to("train" if name == "train" else "inference")
        assert all(t.startswith(prefix) == expected for t in texts), (name, texts[0][:40])
        originals = {e.id: e.text for e in datamodule.examples()[name]}
        assert [t.removeprefix(prefix) for t in texts] == [originals[i] for i in split.ids]


def test_dynamic_padding_pads_each_batch_to_its_longest_member(corpus, tokenizer, tmp_path):
    datamodule = _datamodule(AihubSource(corpus), tokenizer, tmp_path, batch_size=4)
    datamodule.setup()
    split = datamodule.splits["train"]
    source_lengths, target_lengths = split.source_lengths(), split.target_lengths()
    widths = set()
    for batch in datamodule.train_dataloader():
        index = batch["index"].numpy()
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        assert ids.shape[1] == source_lengths[index].max()
        assert labels.shape[1] == target_lengths[index].max()
        assert mask.sum(1).tolist() == source_lengths[index].tolist()
        assert (ids[mask == 0] == tokenizer.pad_token_id).all()
        assert ((labels != LABEL_PAD).sum(1)).tolist() == target_lengths[index].tolist()
        for row, i in enumerate(index):  # real tokens first, padding after
            assert mask[row, : source_lengths[i]].all() and not mask[row, source_lengths[i] :].any()
            assert labels[row, : target_lengths[i]].tolist() == split[i]["labels"].tolist()
        widths.add(ids.shape[1])
    assert len(widths) > 1
    for name, loader in (
        ("val", datamodule.val_dataloader()),
        ("test", datamodule.test_dataloader()),
    ):
        seen = sorted(chain.from_iterable(b["index"].tolist() for b in loader))
        assert seen == list(range(len(datamodule.splits[name])))


def test_pad_to_max_length_gives_fixed_widths(corpus, tokenizer, tmp_path):
    datamodule = _datamodule(
        AihubSource(corpus),
        tokenizer,
        tmp_path,
        max_source_length=96,
        max_target_length=24,
        pad_to_max_length=True,
    )
    datamodule.setup()
    split = datamodule.splits["train"]
    for batch in datamodule.train_dataloader():
        assert batch["input_ids"].shape[1] == 96 and batch["attention_mask"].shape[1] == 96
        assert batch["labels"].shape[1] == 24
        index = batch["index"].numpy()
        assert batch["attention_mask"].sum(1).tolist() == split.source_lengths()[index].tolist()
        assert (batch["labels"] != LABEL_PAD).sum(1).tolist() == split.target_lengths()[
            index
        ].tolist()


def test_attention_mask_keeps_real_tokens_equal_to_the_pad_id():
    # e.g. a tokenizer whose pad token is its </s> (id 1 here)
    collate = Seq2SeqCollator(pad_token_id=1)
    batch = collate(
        [
            {"index": 0, "input_ids": np.array([5, 6, 1]), "labels": np.array([7, 1])},
            {"index": 1, "input_ids": np.array([5, 1]), "labels": np.array([1])},
        ]
    )
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[7, 1], [1, LABEL_PAD]]


def test_truncation_is_counted_exactly_and_keeps_the_final_eos(corpus, tokenizer, tmp_path):
    examples = AihubSource(corpus).load().examples
    full = sorted(len(ids) for ids in tokenizer([e.text for e in examples])["input_ids"])
    max_source = full[len(full) // 2]  # some longer, some shorter, at least one exactly as long
    datamodule = _datamodule(
        AihubSource(corpus),
        tokenizer,
        tmp_path,
        PromptTemplate(),
        max_source_length=max_source,
        max_target_length=12,
    )
    datamodule.setup()
    summary = datamodule.data_summary
    for name in SPLITS:
        split_examples = datamodule.examples()[name]
        sources = tokenizer([e.text for e in split_examples])["input_ids"]
        targets = tokenizer(text_target=[e.summary for e in split_examples])["input_ids"]
        assert summary["truncated_sources"][name] == sum(len(s) > max_source for s in sources)
        assert summary["truncated_targets"][name] == sum(len(t) > 12 for t in targets)
        split = datamodule.splits[name]
        for i, full_ids in enumerate(sources):
            ids = split[i]["input_ids"].tolist()
            if len(full_ids) <= max_source:
                assert ids == full_ids
            else:  # cut, then </s> appended as in an untruncated encoding
                assert ids[:-1] == full_ids[: max_source - 1] and len(ids) == max_source
            assert ids[-1] == tokenizer.eos_token_id
    assert 0 < sum(summary["truncated_sources"].values()) < len(examples)
    assert sum(summary["truncated_targets"].values()) > 0


def test_empty_split_is_an_error_naming_it(tokenizer, tmp_path):
    table = tmp_path / "two.csv"
    with table.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "summary"])
        writer.writerows(
            [["a", "첫 번째 본문입니다.", "첫 요약"], ["b", "두 번째 본문입니다.", "둘 요약"]]
        )
    datamodule = _datamodule(TableSource(table), tokenizer, tmp_path / "cache")
    empty = [name for name in SPLITS if not datamodule.examples()[name]]
    assert empty
    with pytest.raises(ValueError, match="empty") as error:
        datamodule.setup()
    assert str(error.value).startswith(f"the {' and '.join(empty)} split")
    assert f"examples from {table} (columns id, text, summary))" in str(error.value)
    assert not list((tmp_path / "cache").rglob("summary.json"))


def test_whole_source_as_test_evaluates_every_example_in_order(tokenizer, tmp_path):
    """kosum-eval split=all: a two-row file (too small to split) is one test set, in order,
    cached apart from the split corpus."""
    table = tmp_path / "two.csv"
    with table.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "summary"])
        writer.writerows([["b", "두 번째 본문.", "둘 요약"], ["a", "첫 번째 본문.", "첫 요약"]])
    whole = _datamodule(TableSource(table), tokenizer, tmp_path / "c", whole_source_as_test=True)
    whole.setup()
    assert whole.splits["test"].ids == ["b", "a"]
    assert whole.splits["test"].references == ["둘 요약", "첫 요약"]
    assert len(whole.splits["train"]) == len(whole.splits["val"]) == 0
    assert whole.data_summary["examples"] == {"train": 0, "val": 0, "test": 2}
    split = _datamodule(TableSource(table), tokenizer, tmp_path / "c")
    assert split.corpus_key() != whole.corpus_key()
    again = _datamodule(TableSource(table), tokenizer, tmp_path / "c", whole_source_as_test=True)
    again.setup()
    assert again.data_summary["cache"] == "hit" and again.splits["test"].ids == ["b", "a"]
    assert len(whole.test_dataloader()) == 1


def test_max_eval_examples_is_a_stable_subset_spread_over_categories(tokenizer, tmp_path):
    corpus = generate_corpus(tmp_path / "corpus", docs_per_category=80)  # files by category
    full = _datamodule(AihubSource(corpus), tokenizer, tmp_path / "full").examples()
    capped = _datamodule(AihubSource(corpus), tokenizer, tmp_path / "a", max_eval_examples=10)
    again = _datamodule(AihubSource(corpus), tokenizer, tmp_path / "b", max_eval_examples=10)
    for name in ("val", "test"):
        subset = capped.examples()[name]
        assert len(subset) == 10
        assert [e.id for e in subset] == [e.id for e in again.examples()[name]]  # stable
        ids = {e.id for e in subset}
        assert [e.id for e in full[name] if e.id in ids] == [e.id for e in subset]  # in order
        # the first ten would cover two or three of the ten categories
        assert len({e.category for e in full[name][:10]}) <= 3
        assert len({e.category for e in subset}) >= 5


def test_max_eval_examples_zero_empties_val_and_test(corpus, tokenizer, tmp_path):
    datamodule = _datamodule(AihubSource(corpus), tokenizer, tmp_path, max_eval_examples=0)
    with pytest.raises(ValueError, match="the val and test splits are empty"):
        datamodule.setup()


# -- length-grouped batches --------------------------------------------------------------------
LENGTHS = np.random.default_rng(0).integers(10, 1000, size=2000)


def _epoch(sampler: LengthGroupedBatchSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def _mean_spread(batches: list[list[int]]) -> float:
    return float(np.mean([LENGTHS[b].max() - LENGTHS[b].min() for b in batches]))


def test_training_batches_cover_every_index_once_and_are_deterministic_per_epoch():
    sampler = LengthGroupedBatchSampler(LENGTHS, batch_size=8, shuffle=True, seed=3)
    epoch0 = _epoch(sampler, 0)
    assert sorted(chain.from_iterable(epoch0)) == list(range(len(LENGTHS)))
    assert len(epoch0) == len(sampler) == 250
    again = LengthGroupedBatchSampler(LENGTHS, batch_size=8, shuffle=True, seed=3)
    assert _epoch(again, 0) == epoch0
    epoch1 = _epoch(sampler, 1)
    assert epoch1 != epoch0
    assert sorted(chain.from_iterable(epoch1)) == list(range(len(LENGTHS)))
    assert _epoch(sampler, 0) == epoch0  # a resumed run replays the same epoch
    other_seed = LengthGroupedBatchSampler(LENGTHS, batch_size=8, shuffle=True, seed=4)
    assert _epoch(other_seed, 0) != epoch0
    # consecutive seeds (a seed sweep) do not replay each other's epochs
    assert _epoch(other_seed, 0) != epoch1 and _epoch(other_seed, 1) != _epoch(sampler, 2)


def test_training_batches_are_length_homogeneous():
    grouped = _epoch(LengthGroupedBatchSampler(LENGTHS, batch_size=8, shuffle=True), 0)
    random = _epoch(
        LengthGroupedBatchSampler(LENGTHS, batch_size=8, shuffle=True, group_by_length=False), 0
    )
    assert sorted(chain.from_iterable(random)) == list(range(len(LENGTHS)))
    assert _mean_spread(grouped) < 0.1 * _mean_spread(random)
    # batches are shuffled, not served shortest- or longest-first
    means = [LENGTHS[b].mean() for b in grouped]
    assert means != sorted(means) and means != sorted(means, reverse=True)


def test_evaluation_batches_are_longest_first():
    sampler = LengthGroupedBatchSampler(LENGTHS[:103], batch_size=10, shuffle=False)
    batches = list(sampler)
    order = list(chain.from_iterable(batches))
    assert sorted(order) == list(range(103)) and len(batches) == len(sampler) == 11
    assert LENGTHS[order].tolist() == sorted(LENGTHS[:103].tolist(), reverse=True)
    unsorted = LengthGroupedBatchSampler(LENGTHS[:103], 10, shuffle=False, group_by_length=False)
    assert list(chain.from_iterable(unsorted)) == list(range(103))


def test_lightning_reaches_set_epoch_through_the_dataloader(corpus, tokenizer, tmp_path):
    datamodule = _datamodule(AihubSource(corpus), tokenizer, tmp_path, batch_size=2)
    datamodule.setup()
    loader = datamodule.train_dataloader()
    epoch0 = [b["index"].tolist() for b in loader]
    _set_sampler_epoch(loader, 1)  # what Lightning's fit loop calls at each epoch start
    assert loader.batch_sampler.epoch == 1
    assert [b["index"].tolist() for b in loader] != epoch0


def test_mid_epoch_resume_skips_only_batches_of_the_same_order(corpus, tokenizer, tmp_path, caplog):
    """A checkpoint records the batch-order version: skipping N batches of another order would
    skip examples the interrupted run never trained on, so that epoch restarts instead."""
    datamodule = _datamodule(AihubSource(corpus), tokenizer, tmp_path)
    datamodule.setup()
    full = list(datamodule.train_dataloader().batch_sampler)
    datamodule.load_state_dict(
        {"epoch": 0, "train_batches_done": 2, "batch_order": BATCH_ORDER_VERSION}
    )
    assert list(datamodule.train_dataloader().batch_sampler) == full[2:]
    datamodule.load_state_dict({"epoch": 0, "train_batches_done": 2})  # an older checkpoint
    assert list(datamodule.train_dataloader().batch_sampler) == full
    assert "another batch order" in caplog.text


# -- the data config: each setting listed once, none ignored -----------------------------------
@pytest.mark.parametrize("data", ["synthetic", "aihub", "table"])
def test_every_data_setting_reaches_the_data_module_or_the_source(compose_train, tmp_path, data):
    """A data config's keys are the data module's parameters of the same names, or read by its
    source (`${data.<key>}`): a key that neither takes would be silently ignored."""
    (tmp_path / "table.csv").write_text("id,text,summary\n", encoding="utf-8")
    overrides = {"aihub": [f"data.root={tmp_path}"], "table": [f"data.path={tmp_path}/table.csv"]}
    cfg = compose_train(tmp_path / "run", f"data={data}", *overrides.get(data, []))
    parameters = inspect.signature(SummarizationDataModule).parameters
    source = OmegaConf.to_yaml(OmegaConf.to_container(cfg.data, resolve=False)["source"])
    unused = [
        key
        for key in cfg.data
        if key != "source" and key not in parameters and f"${{data.{key}}}" not in source
    ]
    assert not unused
    built = build_datamodule(cfg)
    assert (built.batch_size, built.max_source_length) == (
        cfg.data.batch_size,
        cfg.data.max_source_length,
    )


def test_a_data_override_reaches_the_data_module(compose_train, tmp_path):
    cfg = compose_train(
        tmp_path, "experiment=smoke", "data.batch_size=3", "data.val_fraction=0.25", "seed=7"
    )
    built = build_datamodule(cfg)
    assert built.batch_size == 3 and built.split_options["val_fraction"] == 0.25
    assert built.seed == 7 and built.cache_dir == Path(cfg.paths.cache_dir)
    assert built.category_filter is None  # test_categories null: one filter for all splits
