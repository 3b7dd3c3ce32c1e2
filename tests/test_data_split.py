"""Deterministic doc-id splits: stability, fractions, grouping, official splits, tiny datasets."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from kosum.data.aihub import AihubSource
from kosum.data.example import SummaryExample
from kosum.data.split import SPLITS, assign_split, split_examples
from kosum.data.synthetic import generate_corpus


def _examples(doc_ids: list[str], split: str | None = None) -> list[SummaryExample]:
    return [
        SummaryExample(f"{d}-{i}", "본문", "요약", doc_id=d, split=split)
        for i, d in enumerate(doc_ids)
    ]


def _assignment(splits: dict[str, list[SummaryExample]]) -> dict[str, str]:
    return {e.id: name for name, examples in splits.items() for e in examples}


def test_assign_split_is_pinned_across_machines_and_runs():
    # sha256-based: these values must never change (a change would reshuffle every experiment).
    assert [assign_split(f"doc-{i}", 0.3, 0.3) for i in range(1, 7)] == [
        "train",
        "test",
        "test",
        "train",
        "test",
        "test",
    ]
    assert assign_split("REPORT-news_r-00003", 0.1, 0.1) == "test"
    assert assign_split("REPORT-news_r-00082", 0.1, 0.1) == "train"
    salted = [assign_split(f"doc-{i}", 0.3, 0.3, salt="other") for i in range(1, 200)]
    assert salted != [assign_split(f"doc-{i}", 0.3, 0.3) for i in range(1, 200)]


def test_fractions_are_respected_on_many_documents():
    counts = Counter(assign_split(f"doc-{i}", 0.1, 0.2) for i in range(20_000))
    assert abs(counts["val"] / 20_000 - 0.1) < 0.01
    assert abs(counts["test"] / 20_000 - 0.2) < 0.01
    assert counts["train"] + counts["val"] + counts["test"] == 20_000


def test_invalid_fractions_are_rejected():
    for val, test in ((-0.1, 0.1), (0.5, 0.5), (0.1, 1.2)):
        with pytest.raises(ValueError, match="fraction"):
            assign_split("x", val, test)
        with pytest.raises(ValueError, match="fraction"):
            split_examples(_examples(["a", "b", "c"]), val, test)


def test_real_passages_of_one_article_stay_together(shared_data: Path):
    examples = AihubSource(shared_data / "aihub582_sample").load().examples
    splits = split_examples(examples, val_fraction=0.3, test_fraction=0.3)
    assert sum(len(v) for v in splits.values()) == 350
    side = _assignment(splits)
    articles: dict[str, set[str]] = {}
    for example in examples:
        articles.setdefault(example.doc_id, set()).add(side[example.id])
    multi = [d for d in articles if sum(e.doc_id == d for e in examples) > 1]
    assert multi  # the samples do contain articles split into several passages
    assert all(len(sides) == 1 for sides in articles.values())


def test_split_ignores_input_order_and_keeps_it_within_splits():
    examples = _examples([f"doc-{i // 2}" for i in range(400)])
    shuffled = examples[:]
    random.Random(1).shuffle(shuffled)
    first, second = split_examples(examples), split_examples(shuffled)
    assert _assignment(first) == _assignment(second)
    for name in SPLITS:
        assert first[name] == [e for e in examples if e in first[name]]


def test_official_validation_is_halved_into_val_and_test(tmp_path: Path):
    corpus = generate_corpus(tmp_path, docs_per_category=20, validation_fraction=0.3)
    examples = AihubSource(corpus).load().examples
    official = {e.id: e.split for e in examples}
    splits = split_examples(examples, val_fraction=0.1, test_fraction=0.1)
    assert {official[e.id] for e in splits["train"]} == {"train"}
    assert {official[e.id] for e in splits["val"] + splits["test"]} == {"val"}
    assert splits["val"] and splits["test"]
    hashed = split_examples(examples, use_official=False)
    assert {official[e.id] for e in hashed["train"]} == {"train", "val"}


def test_official_validation_data_alone_is_split_by_hash(caplog):
    """AI-Hub's validation zip alone: official mode would train on one document (the
    tiny-dataset rule's), so the documents are split by hash, with a warning."""
    examples = _examples([f"v{i}" for i in range(200)], split="val")
    splits = split_examples(examples, val_fraction=0.1, test_fraction=0.1)
    assert splits == split_examples(examples, use_official=False)
    assert 140 < len(splits["train"]) < 180
    assert "every document comes from the official validation split" in caplog.text


def test_an_article_straddling_the_official_split_goes_to_train():
    examples = [
        SummaryExample("a-1", "본문", "요약", doc_id="a", split="train"),
        SummaryExample("a-2", "본문", "요약", doc_id="a", split="val"),
        *_examples([f"v{i}" for i in range(20)], split="val"),
        *_examples([f"t{i}" for i in range(20)], split="train"),
    ]
    side = _assignment(split_examples(examples))
    assert side["a-1"] == side["a-2"] == "train"


def test_tiny_datasets_get_three_non_empty_splits_deterministically():
    for doc_ids in (["a", "b", "c"], ["a", "a", "b", "c", "d"], [f"d{i}" for i in range(7)]):
        for fractions in ((0.1, 0.1), (0.0, 0.0), (0.0, 0.9)):
            splits = split_examples(_examples(doc_ids), *fractions)
            assert all(splits[name] for name in SPLITS), (doc_ids, fractions)
            assert _assignment(splits) == _assignment(
                split_examples(_examples(doc_ids), *fractions)
            )
    two = split_examples(_examples(["a", "b"]), 0.1, 0.1)
    assert sum(len(v) for v in two.values()) == 2
