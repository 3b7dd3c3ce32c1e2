"""AihubSource: the real samples, corrupted copies of them, and synthetic multi-category fixtures
(folders, zips with CP949 member names, nested layouts, official split folders)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from kosum.config import config_dir, register_resolvers
from kosum.data.aihub import CATEGORIES, SETS, AihubSource, NoDocumentsError
from kosum.data.corruption import document_like
from kosum.data.normalize import normalize_text
from kosum.data.synthetic import generate_corpus

SAMPLE_DIR = Path("aihub582_sample", "2~3sent")


@pytest.fixture(scope="module")
def samples(shared_data: Path) -> Path:
    return shared_data / SAMPLE_DIR


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic folders: both sets, ten categories, six passages each, Training/Validation."""
    out = tmp_path_factory.mktemp("folders")
    return generate_corpus(out, docs_per_category=6, sets=SETS, validation_fraction=0.3)


@pytest.fixture(scope="module")
def zipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same corpus as `corpus`, as one zip per set with CP949 member names."""
    out = tmp_path_factory.mktemp("zips")
    return generate_corpus(
        out, docs_per_category=6, sets=SETS, validation_fraction=0.3, zip_output=True
    )


@pytest.fixture(scope="module")
def news(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Good news_r files (synthetic, so these tests also run where ../shared is absent)."""
    out = tmp_path_factory.mktemp("news")
    return sorted(generate_corpus(out, docs_per_category=8, categories=["news_r"]).rglob("*.json"))


@pytest.fixture(scope="module")
def template(news: list[Path]) -> dict:
    return json.loads(news[0].read_bytes())


@pytest.fixture(params=["real", "synthetic"])
def good_files(request: pytest.FixtureRequest, news: list[Path]) -> list[Path]:
    """The 350 real samples (skipped where absent), or synthetic news_r files."""
    if request.param == "synthetic":
        return news
    return sorted((request.getfixturevalue("shared_data") / SAMPLE_DIR).glob("*.json"))


def _document(template: dict, number: int, category: str = "news_r") -> dict:
    """A copy of a good document under new ids (so it is not a duplicate of the original)."""
    return document_like(template, number, category)


def _write(path: Path, doc: dict) -> bytes:
    data = json.dumps(doc, ensure_ascii=False, indent="\t").encode()
    path.write_bytes(data)
    return data


def test_real_samples_load_completely_with_ids_sets_and_doc_groups(samples: Path):
    result = AihubSource(samples).load()
    assert len(result.examples) == 350 and result.skipped == []
    assert sorted(e.id for e in result.examples) == sorted(p.stem for p in samples.glob("*.json"))
    assert {e.category for e in result.examples} == {"news_r"}
    assert set(result.sets.values()) == {"2~3sent"}
    assert {e.split for e in result.examples} == {None}  # no Training/Validation in the path
    passages_per_doc = Counter(e.doc_id for e in result.examples)
    assert passages_per_doc["REPORT-news_r-04479"] == 2
    assert all(e.id.startswith(e.doc_id + "-") for e in result.examples)


def test_normalisation_reproduces_the_competition_csv_on_all_samples(
    samples: Path, competition_csv: Path
):
    with open(competition_csv, encoding="utf-8", newline="") as f:
        expected = {row["id"]: (row["text"], row["summary"]) for row in csv.DictReader(f)}
    raw = {}
    for path in samples.glob("*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        passage, summary = doc["Meta(Refine)"]["passage"], doc["Annotation"]["summary1"]
        raw[doc["Meta(Refine)"]["passage_id"]] = (normalize_text(passage), normalize_text(summary))
    assert len(expected) == 350
    assert raw == expected
    loaded = {e.id: (e.text, e.summary) for e in AihubSource(samples).load().examples}
    assert loaded == expected


def test_corrupted_files_are_skipped_with_path_and_reason_and_good_ones_kept(
    good_files: list[Path], template: dict, tmp_path: Path
):
    folder = tmp_path / "2~3sent" / "Validation"
    folder.mkdir(parents=True)
    for path in good_files:
        shutil.copy(path, folder)
    good = _write(folder / "REPORT-news_r-90000-00001.json", _document(template, 90000))
    (folder / "REPORT-news_r-90001-00001.json").write_bytes(good[: len(good) // 2])
    text = json.dumps(_document(template, 90002), ensure_ascii=False)
    (folder / "REPORT-news_r-90002-00001.json").write_bytes(text.encode("cp949", "replace"))
    (folder / "REPORT-news_r-90003-00001.json").write_bytes('{"a": "café"}'.encode("latin-1"))
    with_bom = json.dumps(_document(template, 90004), ensure_ascii=False)
    (folder / "REPORT-news_r-90004-00001.json").write_bytes(b"\xef\xbb\xbf" + with_bom.encode())
    no_annotation = _document(template, 90005)
    del no_annotation["Annotation"]
    _write(folder / "REPORT-news_r-90005-00001.json", no_annotation)
    null_summary = _document(template, 90006)
    null_summary["Annotation"]["summary1"] = None
    _write(folder / "REPORT-news_r-90006-00001.json", null_summary)
    empty_passage = _document(template, 90007)
    empty_passage["Meta(Refine)"]["passage"] = " \n  \u200b "
    _write(folder / "REPORT-news_r-90007-00001.json", empty_passage)
    _write(folder / "REPORT-blog-90008-00001.json", _document(template, 90008, "blog"))
    (folder / "REPORT-news_r-90009-00001.json").write_bytes(b" \n")
    numeric_passage = _document(template, 90010)
    numeric_passage["Meta(Refine)"]["passage"] = 123
    _write(folder / "REPORT-news_r-90010-00001.json", numeric_passage)
    listed_summary = _document(template, 90011)
    listed_summary["Annotation"]["summary1"] = ["가", "나"]
    _write(folder / "REPORT-news_r-90011-00001.json", listed_summary)

    result = AihubSource(tmp_path).load()

    reasons = {Path(s.path).name.split("-")[2]: s.reason for s in result.skipped}
    assert len(result.skipped) == 10 and all(s.path.startswith(str(folder)) for s in result.skipped)
    assert reasons["90010"] == "Meta(Refine).passage is int, expected a string"
    assert reasons["90011"] == "Annotation.summary1 is list, expected a string"
    unsummarised = AihubSource(tmp_path, require_summary=False).load()  # inference inputs
    assert "REPORT-news_r-90011-00001" in {e.id for e in unsummarised.examples}
    assert re.fullmatch(r"invalid JSON \(.+, line \d+ column \d+\)", reasons["90001"])
    assert reasons["90009"] == "empty file"
    assert "not UTF-8" in reasons["90002"] and "not UTF-8" in reasons["90003"]
    assert "Annotation" in reasons["90005"]
    assert "summary1" in reasons["90006"]
    assert "empty passage" in reasons["90007"]
    assert "unknown category 'blog'" in reasons["90008"]
    ids = {e.id for e in result.examples}
    assert len(result.examples) == len(good_files) + 2  # all originals, the copy, the BOM one
    assert {"REPORT-news_r-90000-00001", "REPORT-news_r-90004-00001"} <= ids
    assert {e.split for e in result.examples} == {"val"}


def test_zips_give_exactly_the_folder_corpus(corpus: Path, zipped: Path):
    from_folders = AihubSource(corpus).load()
    from_zips = AihubSource(zipped).load()
    assert from_zips.examples == from_folders.examples
    assert from_zips.sets == from_folders.sets
    assert from_zips.skipped == []
    assert from_zips.by_category() == {c: 12 for c in sorted(CATEGORIES)}
    assert from_zips.by_set() == {"20per": 60, "2~3sent": 60}
    assert {e.split for e in from_zips.examples} == {"train", "val"}


def test_zip_member_names_are_decoded_from_cp949(corpus: Path, zipped: Path):
    # Loading the folders first makes every zip member a duplicate: skip records show its name.
    result = AihubSource([corpus, zipped]).load()
    assert len(result.skipped) == len(result.examples) == 120
    news = [s.path for s in result.skipped if "REPORT-news_r-" in s.path]
    assert news and all("/Training/신문기사/" in p or "/Validation/신문기사/" in p for p in news)
    assert all(".zip!/" in s.path and "duplicate id" in s.reason for s in result.skipped)


def test_nested_layouts_and_split_folder_names(template: dict, zipped: Path, tmp_path: Path):
    layouts = {
        "1.Training/2~3sent": "train",
        "train": "train",
        "TL_news_r": "train",
        "2.Validation/news": "val",
        "valid": "val",
        "검증데이터": "val",
        "other/deeper": None,
    }
    root = tmp_path / "data"
    for number, folder in enumerate(layouts, start=80000):
        (root / folder).mkdir(parents=True)
        _write(root / folder / f"REPORT-news_r-{number}-00001.json", _document(template, number))
    (root / "deep" / "er").mkdir(parents=True)
    shutil.copy(zipped / "20per.zip", root / "deep" / "er" / "archive.zip")

    result = AihubSource(root).load()

    loose = {e.id: e.split for e in result.examples if e.id.startswith("REPORT-news_r-8")}
    assert loose == {
        f"REPORT-news_r-{number}-00001": split
        for number, split in enumerate(layouts.values(), start=80000)
    }
    # The zip's members name their set folder; of the loose files only "1.Training/2~3sent" does.
    assert result.by_set() == {"20per": 60, "2~3sent": 1, "unknown": 6}


def test_folders_above_the_root_do_not_set_the_split(news: list[Path], tmp_path: Path):
    root = tmp_path / "Validation" / "corpus"
    root.mkdir(parents=True)
    shutil.copy(news[0], root)
    assert [e.split for e in AihubSource(root).load().examples] == [None]
    assert [e.split for e in AihubSource(root.parent).load().examples] == ["val"]


def test_category_set_and_summary_field_filters(corpus: Path):
    picked = AihubSource(corpus, categories=["news_r", "paper"]).load()
    assert picked.by_category() == {"news_r": 12, "paper": 12} and picked.skipped == []
    assert AihubSource(corpus, categories="all").load().by_category() == {
        c: 12 for c in sorted(CATEGORIES)
    }

    only_20per = AihubSource(corpus, set="20per").load()
    assert only_20per.by_set() == {"20per": 60}
    # `~` does not parse in a Hydra override (data.set=2-3sent): the folder spellings work too
    for spelling in ("2~3sent", "2-3sent", "2_3SENT"):
        source = AihubSource(corpus, set=spelling)
        assert source.set == "2~3sent" and source.load().by_set() == {"2~3sent": 60}

    extractive = AihubSource(corpus, set="20per", summary_field="summary3").load()
    assert len(extractive.examples) == 60
    assert all(e.summary.split(". ")[0] in e.text for e in extractive.examples)

    # summary3 is null in the 2~3sent set: those files lack the chosen field and are reported.
    mixed = AihubSource(corpus, summary_field="summary3").load()
    assert len(mixed.examples) == 60 and len(mixed.skipped) == 60
    assert all("2~3sent" in s.path and "summary3" in s.reason for s in mixed.skipped)


def test_caps_follow_the_sorted_order(corpus: Path):
    full = AihubSource(corpus).load().examples
    assert AihubSource(corpus, max_docs=7).load().examples == full[:7]
    capped = AihubSource(corpus, max_docs_per_category=2).load().examples
    expected = [
        e for e in full if [x.category for x in full[: full.index(e)]].count(e.category) < 2
    ]
    assert capped == expected and len(capped) == 20
    both = AihubSource(corpus, max_docs=5, max_docs_per_category=1).load().examples
    assert [e.category for e in both] == list(dict.fromkeys(e.category for e in full))[:5]


def test_files_outside_a_set_folder_load_only_with_set_both(news: list[Path], tmp_path: Path):
    for path in news[:3]:
        shutil.copy(path, tmp_path / path.name)
    result = AihubSource(tmp_path).load()
    assert len(result.examples) == 3 and result.by_set() == {"unknown": 3}
    with pytest.raises(NoDocumentsError):
        AihubSource(tmp_path, set="2~3sent").load()


def test_no_documents_error_names_roots_and_filter(news: list[Path]):
    root = news[0].parents[3]  # <out>/2~3sent/<split>/<folder>/<file>
    with pytest.raises(NoDocumentsError) as info:
        AihubSource(root, categories=["paper", "edit"], summary_field="summary2").load()
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(root) in message
    assert "paper,edit" in message and "set=both" in message and "summary2" in message
    assert f"2~3sent/news_r: {len(news)}" in message  # what the root does contain


def test_bad_roots_and_options_fail_clearly(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        AihubSource(tmp_path / "no-such-dir")
    with pytest.raises(ValueError, match="unknown categories"):
        AihubSource(tmp_path, categories=["news"])
    with pytest.raises(ValueError, match="summary_field"):
        AihubSource(tmp_path, summary_field="summary9")
    with pytest.raises(ValueError, match="set"):
        AihubSource(tmp_path, set="30per")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(NoDocumentsError, match="cannot open zip"):
        AihubSource(tmp_path).load()


def test_unreadable_zip_members_are_skipped(news: list[Path], tmp_path: Path):
    archive_path = tmp_path / "2~3sent.zip"
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_STORED) as archive:
        for path in news[:2]:
            archive.write(path, f"Validation/{path.name}")
    with zipfile.ZipFile(archive_path) as archive:
        start = archive.infolist()[0].header_offset
    data = bytearray(archive_path.read_bytes())
    header = 30 + int.from_bytes(data[start + 26 : start + 28], "little")
    header += int.from_bytes(data[start + 28 : start + 30], "little")
    data[start + header + 100] ^= 0xFF  # flip a stored byte of the first member: bad CRC
    archive_path.write_bytes(bytes(data))

    result = AihubSource(archive_path).load()

    [skipped] = result.skipped
    assert skipped.path.startswith(f"{archive_path}!/Validation/REPORT-")
    assert skipped.reason.startswith("cannot read:") and "CRC" in skipped.reason
    assert len(result.examples) == 1 and result.examples[0].split == "val"


def test_category_and_ids_fall_back_to_meta_when_the_name_has_none(template: dict, tmp_path: Path):
    doc = _document(template, 123, "briefing")
    _write(tmp_path / "first.json", doc)
    del doc["Meta(Refine)"]["passage_id"], doc["Meta(Acqusition)"]["doc_id"]
    _write(tmp_path / "REPORT-briefing-00124-00002.json", doc)
    doc["Meta(Acqusition)"]["doc_type"] = "poetry"
    _write(tmp_path / "third.json", doc)

    result = AihubSource(tmp_path).load()

    assert [(e.id, e.doc_id, e.category) for e in result.examples] == [
        ("REPORT-briefing-00124-00002", "REPORT-briefing-00124", "briefing"),
        ("REPORT-briefing-00123-00001", "REPORT-briefing-00123", "briefing"),
    ]
    assert [Path(s.path).name for s in result.skipped] == ["third.json"]
    assert "unknown category 'poetry'" in result.skipped[0].reason


def test_fingerprint_tracks_files_and_options_without_parsing(corpus: Path, tmp_path: Path):
    root = tmp_path / "copy"
    shutil.copytree(corpus, root)
    first = AihubSource(root).fingerprint()
    assert AihubSource(root).fingerprint() == first
    assert AihubSource(root, categories=["news_r"]).fingerprint() != first
    assert AihubSource(root, max_docs=3).fingerprint() != first
    target = next(root.rglob("*.json"))
    os.utime(target, ns=(1, 1))
    touched = AihubSource(root).fingerprint()
    assert touched != first
    (root / "REPORT-news_r-99999-00001.json").write_text("{not json")  # never parsed here
    assert AihubSource(root).fingerprint() not in (first, touched)


def test_shared_sample_config_finds_the_samples_from_any_directory(
    shared_data: Path, tmp_path: Path, monkeypatch
):
    """`data=shared_sample` points beside the checkout, not beside the working directory."""
    register_resolvers()
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["data=shared_sample"])
    root = Path(OmegaConf.select(cfg, "data.root"))
    assert root.resolve() == (shared_data / "aihub582_sample").resolve()


@pytest.mark.slow
def test_ten_thousand_files_with_one_percent_corrupted_lose_no_good_document(
    template: dict, tmp_path: Path
):
    """10,000 AI-Hub documents from a seeded generator, 2,000 of them in a zip, 1% broken in
    every known way (`kosum.data.corruption.DEFECTS`, 10 content defects in files or members,
    5 defects of zip member names): exact counts of loaded and skipped documents; every good
    document kept, whatever its member's name, with its category and split."""
    import random

    from kosum.data.corruption import CONTENT_DEFECTS, DUPLICATE, NAME_DEFECTS, write_corpus

    documents = [_document(template, n, CATEGORIES[n % len(CATEGORIES)]) for n in range(10_000)]
    zipped = range(8_000, 10_000)
    rng = random.Random(0)
    in_content = (*CONTENT_DEFECTS, DUPLICATE) * 7  # 70, in files and members alike
    defects = dict(zip(rng.sample(range(10_000), 70), in_content, strict=True))
    names = rng.sample([n for n in zipped if n not in defects], 30)
    defects |= dict(zip(names, NAME_DEFECTS * 6, strict=True))
    corpus = write_corpus(tmp_path, documents, defects, zipped)

    result = AihubSource(tmp_path).load()

    assert {e.id for e in result.examples} == corpus.good_ids  # no good document lost
    assert len(result.examples) == 9_937  # all but the 63 broken in content
    assert len(result.skipped) == 76  # 63 broken + 6 truncated twins of a name + 7 copies
    reasons = Counter(
        "duplicate" if s.reason.startswith("duplicate id") else "other" for s in result.skipped
    )
    assert reasons == {"duplicate": 7, "other": 69}
    assert all(e.category == e.id.split("-")[1] for e in result.examples)
    assert {e.split for e in result.examples} == {"train"}  # backslash folders read as folders
