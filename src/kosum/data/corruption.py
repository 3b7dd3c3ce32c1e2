"""A generated AI-Hub 582 corpus with known defects, to hold the loader to: its tests
(`tests/test_data_aihub.py`) and its benchmark (`scripts/bench_data.py --defects`).

Each defect is one way a delivered file has been seen broken: in its content (truncated JSON,
other encodings, missing or wrong-typed fields, an empty file, a passage delivered twice) or in
its name inside a zip (bytes in no Korean encoding, Windows separators, `..` or absolute
paths, one name used for two members). `write_corpus` writes documents with defects where it
is told to and says what a correct loader returns: every passage whose content is intact,
whatever its name.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CONTENT_DEFECTS = (
    "truncated JSON",
    "cp949 bytes",
    "latin-1 bytes",
    "no Annotation",
    "null summary",
    "blank passage",
    "numeric passage",
    "list summary",
    "empty file",
)
DUPLICATE = "duplicate id"  # the passage again, in a second file
NAME_DEFECTS = (  # zip members only
    "undecodable name",
    "backslash folders",
    "parent folders",
    "absolute name",
    "name used twice",  # the good member, then a truncated one under the same name
)
DEFECTS = (*CONTENT_DEFECTS, DUPLICATE, *NAME_DEFECTS)
SPLIT_FOLDER = "Training"
ARCHIVE = "archive.zip"  # named for no split: its members' folders say Training


def document_like(template: dict, number: int, category: str) -> dict:
    """A copy of an AI-Hub document under the ids of passage `number` of `category`."""
    doc = json.loads(json.dumps(template))
    doc_id = f"REPORT-{category}-{number:05d}"
    doc["Meta(Acqusition)"]["doc_id"] = doc_id
    doc["Meta(Acqusition)"]["doc_type"] = category
    doc["Meta(Refine)"]["passage_id"] = f"{doc_id}-00001"
    return doc


def broken_content(kind: str, doc: dict) -> bytes:
    """`doc`'s file broken in one of `CONTENT_DEFECTS`."""
    good = json.dumps(doc, ensure_ascii=False).encode()
    if kind == "truncated JSON":
        return good[: len(good) // 2]
    if kind == "cp949 bytes":
        return good.decode().encode("cp949", "replace")
    if kind == "latin-1 bytes":
        return '{"a": "café"}'.encode("latin-1")
    if kind == "empty file":
        return b""
    broken = json.loads(good)
    if kind == "no Annotation":
        del broken["Annotation"]
    elif kind == "null summary":
        broken["Annotation"]["summary1"] = None
    elif kind == "blank passage":
        broken["Meta(Refine)"]["passage"] = " \u200b "
    elif kind == "numeric passage":
        broken["Meta(Refine)"]["passage"] = 7
    elif kind == "list summary":
        broken["Annotation"]["summary1"] = ["가"]
    else:
        raise ValueError(f"unknown content defect {kind!r}; known: {CONTENT_DEFECTS}")
    return json.dumps(broken, ensure_ascii=False).encode()


class _RawNameInfo(zipfile.ZipInfo):
    """A member whose name is written as the given bytes, without the UTF-8 flag (zipfile
    itself writes only ASCII or flagged UTF-8 names)."""

    raw_name = b""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # zipfile's name for it
        return self.raw_name, self.flag_bits & ~0x800


@dataclass
class DefectiveCorpus:
    """What `write_corpus` wrote, and what a correct loader makes of it."""

    root: Path
    good_ids: set[str] = field(default_factory=set)  # the passages it must return
    broken: int = 0  # files or members it must skip as unreadable or invalid
    duplicates: int = 0  # second copies of a passage it must skip


def write_corpus(
    root: Path,
    documents: Sequence[dict],
    defects: Mapping[int, str],
    zipped: Collection[int] = (),
) -> DefectiveCorpus:
    """Write `documents` under `root/2~3sent`: the ones numbered in `zipped` as members of
    `archive.zip` (in its `Training/` folder), the rest as files in `Training/`; document
    `n` broken in the way `defects[n]` names (a name defect needs `n` in `zipped`)."""
    corpus = DefectiveCorpus(root)
    folder = root / "2~3sent" / SPLIT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "2~3sent" / ARCHIVE, "w", zipfile.ZIP_DEFLATED) as archive:
        for number, doc in enumerate(documents):
            kind = defects.get(number)
            if kind is not None and kind not in DEFECTS:
                raise ValueError(f"unknown defect {kind!r}; known: {DEFECTS}")
            if kind in NAME_DEFECTS and number not in zipped:
                raise ValueError(f"document {number}: {kind!r} is a defect of zip members")
            passage_id = doc["Meta(Refine)"]["passage_id"]
            name = f"{passage_id}.json"
            data = json.dumps(doc, ensure_ascii=False).encode()
            if kind in CONTENT_DEFECTS:
                data = broken_content(kind, doc)
                corpus.broken += 1
            else:
                corpus.good_ids.add(passage_id)
            if number not in zipped:
                (folder / name).write_bytes(data)
                if kind == DUPLICATE:
                    (folder / f"{passage_id}-copy.json").write_bytes(data)
                    corpus.duplicates += 1
                continue
            member = f"{SPLIT_FOLDER}/{name}"
            if kind == "undecodable name":
                info = _RawNameInfo(member)
                info.raw_name = f"{SPLIT_FOLDER}/".encode() + b"\xff\xfe" + name.encode()
                archive.writestr(info, data, zipfile.ZIP_DEFLATED)
                continue
            member = {
                "backslash folders": f"{SPLIT_FOLDER}\\{name}",
                "parent folders": f"../../{member}",
                "absolute name": f"/{member}",
            }.get(kind, member)
            archive.writestr(member, data)
            if kind == DUPLICATE:
                archive.writestr(f"{SPLIT_FOLDER}/{passage_id}-copy.json", data)
                corpus.duplicates += 1
            elif kind == "name used twice":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
                    archive.writestr(member, data[: len(data) // 2])
                corpus.broken += 1
    return corpus
