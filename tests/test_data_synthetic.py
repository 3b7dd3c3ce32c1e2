"""The synthetic corpus: real-file structure, determinism, zip names, learnable summaries."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from kosum.data import synthetic_source
from kosum.data.aihub import CATEGORIES, SETS
from kosum.data.synthetic import MAX_SENTENCES, MIN_SENTENCES, PUBLISHER, generate_corpus
from kosum.data.synthetic_source import SyntheticSource

NAME = re.compile(r"^REPORT-([a-z_]+)-(\d{5})-(\d{5})\.json$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_corpus(tmp_path_factory.mktemp("synthetic"), docs_per_category=30, sets=SETS)


def _documents(root: Path) -> dict[Path, dict]:
    return {p: json.loads(p.read_bytes()) for p in sorted(root.rglob("*.json"))}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _shape(value: object) -> object:
    """Nested key structure of a document (keys and value kinds, not values)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path: Path):
    for zip_output in (False, True):
        runs = [
            generate_corpus(
                tmp_path / f"{zip_output}-{i}",
                docs_per_category=5,
                sets=SETS,
                seed=seed,
                zip_output=zip_output,
            )
            for i, seed in enumerate((3, 3, 4))
        ]
        first, again, other = (_digests(r) for r in runs)
        assert first == again and len(first) == (2 if zip_output else 100)
        assert first != other


# The key structure of a real `2~3sent` file (value kinds), as in ../shared/data/README.md.
REAL_SHAPE = {
    "Meta(Acqusition)": dict.fromkeys(
        (
            "doc_id",
            "doc_category",
            "doc_type",
            "doc_name",
            "author",
            "publisher",
            "publisher_year",
            "doc_origin",
        ),
        "str",
    ),
    "Meta(Refine)": {"passage_id": "str", "passage": "str", "passage_Cnt": "int"},
    "Annotation": {
        "summary1": "str",
        "summary2": "str",
        "summary3": "NoneType",
        "summary_3_cnt": "NoneType",
    },
}


def test_the_expected_shape_and_serialisation_are_those_of_the_real_files(shared_data: Path):
    for path in sorted((shared_data / "aihub582_sample" / "2~3sent").glob("*.json"))[:50]:
        real = json.loads(path.read_bytes())
        assert _shape(real) == REAL_SHAPE
        assert json.dumps(real, ensure_ascii=False, indent="\t").encode() == path.read_bytes()


def test_files_have_the_real_structure_layout_and_format(corpus: Path):
    documents = _documents(corpus)
    assert len(documents) == 30 * len(CATEGORIES) * len(SETS)
    with_summary3 = {
        **REAL_SHAPE,
        "Annotation": {**REAL_SHAPE["Annotation"], "summary3": "str", "summary_3_cnt": "int"},
    }
    for path, doc in documents.items():
        set_name, split, _, name = path.relative_to(corpus).parts
        assert set_name in SETS and split in ("Training", "Validation")
        category, _, _ = NAME.match(name).groups()
        assert doc["Meta(Acqusition)"]["doc_type"] == category
        assert doc["Meta(Refine)"]["passage_id"] == name.removesuffix(".json")
        assert doc["Meta(Refine)"]["passage_id"].startswith(doc["Meta(Acqusition)"]["doc_id"])
        assert doc["Meta(Acqusition)"]["publisher"] == PUBLISHER
        # Same serialisation as the real files: tab-indented, non-ASCII kept, no final newline.
        assert json.dumps(doc, ensure_ascii=False, indent="\t").encode() == path.read_bytes()
        assert _shape(doc) == (with_summary3 if set_name == "20per" else REAL_SHAPE)
    ids = Counter(d["Meta(Refine)"]["passage_id"] for d in documents.values())
    assert max(ids.values()) == 1  # unique across both sets


def test_passages_have_the_source_layout_and_sentence_counts(corpus: Path):
    documents = _documents(corpus).values()
    counts = []
    for doc in documents:
        passage = doc["Meta(Refine)"]["passage"]
        assert doc["Meta(Refine)"]["passage_Cnt"] == len(passage)
        sentences = passage.split("\n  ")
        assert all(s and not s[0].isspace() for s in sentences)
        counts.append(len(sentences))
    assert min(counts) >= MIN_SENTENCES and max(counts) <= MAX_SENTENCES
    assert len(set(counts)) > 5
    per_article = Counter(d["Meta(Acqusition)"]["doc_id"] for d in documents)
    assert 2 in per_article.values()  # some articles have two passages


def test_validation_holds_whole_articles_at_about_the_fraction(corpus: Path):
    split_of: dict[str, set[str]] = {}
    for path, doc in _documents(corpus).items():
        split_of.setdefault(doc["Meta(Acqusition)"]["doc_id"], set()).add(path.parts[-3])
    assert all(len(s) == 1 for s in split_of.values())
    validation = sum(s == {"Validation"} for s in split_of.values()) / len(split_of)
    assert 0.15 < validation < 0.25  # default validation_fraction=0.2


def _bigrams(text: str) -> set[str]:
    compact = text.replace(" ", "")
    return {compact[i : i + 2] for i in range(len(compact) - 1)}


def test_summary1_is_a_function_of_the_lead_of_its_own_passage(corpus: Path):
    by_category: dict[str, list[tuple[str, str]]] = {}
    summary_of_lead: dict[str, set[str]] = {}
    for doc in _documents(corpus).values():
        lead = " ".join(doc["Meta(Refine)"]["passage"].split("\n  ")[:2])
        summary = doc["Annotation"]["summary1"]
        assert set(re.findall(r"\d[\d,]*", summary)) <= set(re.findall(r"\d[\d,]*", lead))
        by_category.setdefault(doc["Meta(Acqusition)"]["doc_type"], []).append((lead, summary))
        first = doc["Meta(Refine)"]["passage"].split("\n  ")[0]
        if not first.startswith("존경하는"):  # speech: the summary also uses the 2nd sentence
            summary_of_lead.setdefault(first, set()).add(summary)
    # Documents with the same lead sentence have the same summary (and some leads do repeat).
    assert all(len(s) == 1 for s in summary_of_lead.values())
    assert len(summary_of_lead) < sum(len(p) for p in by_category.values()) - 20
    for category, pairs in by_category.items():
        own = [_overlap(summary, lead) for lead, summary in pairs]
        shifted = zip(pairs, pairs[1:] + pairs[:1], strict=True)
        other = [_overlap(summary, lead) for (lead, _), (_, summary) in shifted]
        assert sum(own) / len(own) > sum(other) / len(other) + 0.1, category


def _overlap(summary: str, lead: str) -> float:
    """Share of the summary's character bigrams found in the lead."""
    return len(_bigrams(summary) & _bigrams(lead)) / len(_bigrams(summary))


def test_categories_have_their_own_vocabulary(corpus: Path):
    words: dict[str, Counter[str]] = {}
    for doc in _documents(corpus).values():
        counter = words.setdefault(doc["Meta(Acqusition)"]["doc_type"], Counter())
        counter.update(doc["Meta(Refine)"]["passage"].split())
    common = {c: {w for w, _ in counts.most_common(40)} for c, counts in words.items()}
    for a in CATEGORIES:
        for b in CATEGORIES:
            if a < b:
                assert len(common[a] & common[b]) < 20, (a, b)


def test_zip_members_have_cp949_names_and_the_folder_bytes(corpus: Path, tmp_path: Path):
    zipped = generate_corpus(tmp_path, docs_per_category=30, sets=SETS, zip_output=True)
    assert sorted(p.name for p in zipped.iterdir()) == ["20per.zip", "2~3sent.zip"]
    for set_name in SETS:
        with zipfile.ZipFile(zipped / f"{set_name}.zip") as archive:
            infos = archive.infolist()
            assert all(info.flag_bits & 0x800 == 0 for info in infos)  # no UTF-8 flag
            names = [info.filename.encode("cp437").decode("cp949") for info in infos]
            assert any("신문기사" in n for n in names) and not any(
                "신문기사" in i.filename for i in infos
            )
            for name, info in zip(names, infos, strict=True):
                assert archive.read(info) == (corpus / name).read_bytes()


def test_bad_arguments_are_rejected(tmp_path: Path):
    with pytest.raises(ValueError, match="blog"):
        generate_corpus(tmp_path, categories=["blog"])
    with pytest.raises(ValueError, match="30per"):
        generate_corpus(tmp_path, sets=["30per"])
    with pytest.raises(ValueError, match="docs_per_category"):
        generate_corpus(tmp_path, docs_per_category=0)


def test_synthetic_source_generates_once_and_a_new_generator_version_regenerates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`data=synthetic` caches its corpus; a change to the generator (its version) must not
    keep serving the old files."""
    make = partial(SyntheticSource, ["news_r", "minute"], 3, cache_dir=tmp_path)
    source = make()
    assert len(source.load().examples) == 6
    assert make().corpus_dir == source.corpus_dir  # the same options reuse the corpus
    monkeypatch.setattr(synthetic_source, "GENERATOR_VERSION", "test-next")
    newer = make()
    assert newer.corpus_dir != source.corpus_dir
    assert len(newer.load().examples) == 6
