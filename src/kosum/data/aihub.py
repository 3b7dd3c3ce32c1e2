"""Reader for AI-Hub dataset 582 ("요약문 및 레포트 생성 데이터") in its original delivery format.

One JSON per passage (`REPORT-<category>-<NNNNN>-<NNNNN>.json`) anywhere below the given roots,
which may be folders, zip files (read in place, never extracted; member names in CP949 are
decoded), zips inside folders, or single JSON files. The set (`2~3sent`/`20per`) and the official
split (Training/Validation) come from the names of the root and the folders/zips below it, the
category from the file name (falling back to `Meta(Acqusition).doc_type`). Bad files are reported
in `LoadResult.skipped`, never fatal.

Not for: tokenisation, caching or train/val/test assignment (see `kosum.data.split`); CSV/JSONL
tables (see `kosum.data.tables`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from kosum.data.example import LoadResult, SkippedRecord, SummaryExample
from kosum.data.normalize import NORMALIZATION_VERSION, normalize_text
from kosum.errors import InputError

CATEGORIES: tuple[str, ...] = (
    "news_r",
    "briefing",
    "his_cul",
    "paper",
    "minute",
    "edit",
    "public",
    "speech",
    "literature",
    "narration",
)
SETS: tuple[str, ...] = ("2~3sent", "20per")
SUMMARY_FIELDS: tuple[str, ...] = ("summary1", "summary2", "summary3")
# Loads of fewer files finish in about a second: no progress bar for them.
PROGRESS_MIN_FILES = 2000
# Bump when parsing or filtering changes what a load returns (part of the cache fingerprint).
_LOADER_VERSION = "1"

_SET_PATTERNS = (
    ("2~3sent", re.compile(r"2[~_-]3sent", re.I)),
    ("20per", re.compile(r"20per", re.I)),
)
# Split names seen in AI-Hub deliveries and their re-packagings, matched as whole words of a
# path component ("1.Training", "2~3sent_validation.zip", "TL_news"), plus the Korean names.
_SPLIT_WORDS = {
    "training": "train",
    "train": "train",
    "tl": "train",
    "validation": "val",
    "valid": "val",
    "val": "val",
    "dev": "val",
    "vl": "val",
}
_SPLIT_KOREAN = (("훈련", "train"), ("학습", "train"), ("검증", "val"))
_WORD = re.compile(r"[a-z]+")
_NAME_CATEGORY = re.compile(r"^[A-Za-z]+-([A-Za-z_]+)-\d+")
# <type>-<category>-<article>-<passage>, e.g. REPORT-news_r-00003-00001
_PASSAGE_ID = re.compile(r"^([A-Za-z]+-([A-Za-z_]+)-\d+)-\d+$")
_ZIP_UTF8_FLAG = 0x800


class NoDocumentsError(InputError):
    """No document under the roots matched the filter (or every matching file was skipped)."""


@dataclass
class AihubLoadResult(LoadResult):
    """A `LoadResult` that also records each loaded example's set ("2~3sent", "20per" or None)."""

    sets: dict[str, str | None] = field(default_factory=dict)

    def by_set(self) -> dict[str, int]:
        return dict(sorted(Counter(s or "unknown" for s in self.sets.values()).items()))


@dataclass(frozen=True)
class _Entry:
    """One candidate document file: on disk, or a member of `archive`."""

    path: str  # shown to the user: a file path, or "<archive>!/<member>"
    name: str
    parts: tuple[str, ...]  # folders from the root's own name down, for set/split detection
    archive: str | None = None
    member: zipfile.ZipInfo | None = None


class _BadDocument(Exception):
    """A file that cannot be used; the message is the skip reason."""


def canonical_set(name: str) -> str:
    """ "2~3sent", "20per" or "both" for `name`, which may also spell the first "2-3sent" or
    "2_3sent" as folder names do (and as a Hydra override must: `~` does not parse there)."""
    for canonical, pattern in _SET_PATTERNS:
        if pattern.fullmatch(name):
            return canonical
    if name != "both":
        raise InputError(
            f"set must be one of {(*SETS, 'both')} (or 2-3sent / 2_3sent), got {name!r}"
        )
    return name


class AihubSource:
    """AI-Hub 582 JSON files below one or more folders / zip files, as an `ExampleSource`.

    `categories`: None, "all" or a list of the ten category names (a comma-separated string is
    accepted too). `set`: "2~3sent" (or "2-3sent", "2_3sent"), "20per" or "both"; files whose
    path names no set are only loaded with "both". `summary_field`: which Annotation field is
    the target; `require_summary=False` (inference inputs, which need a row for every document
    with an id) loads a document without one, with summary "", and also one with an empty
    passage (text "") or an unknown category.
    Caps apply in the deterministic (sorted path) order and count loaded documents, not files.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        categories: Sequence[str] | str | None = None,
        summary_field: str = "summary1",
        set: str = "both",
        max_docs: int | None = None,
        max_docs_per_category: int | None = None,
        require_summary: bool = True,
    ) -> None:
        roots = [root] if isinstance(root, str | os.PathLike) else list(root)
        if not roots:
            raise InputError("AihubSource needs at least one root folder or zip file")
        self.roots = [Path(r) for r in roots]
        for path in self.roots:
            if not path.exists():
                raise FileNotFoundError(f"AI-Hub data root does not exist: {path}")
            if path.is_file() and not (_is_zip(path.name) or _is_document_name(path.name, ())):
                raise InputError(f"AI-Hub root must be a folder, a .zip or a .json file: {path}")
        self.categories = _resolve_categories(categories)
        if summary_field not in SUMMARY_FIELDS:
            raise InputError(
                f"summary_field must be one of {SUMMARY_FIELDS}, got {summary_field!r}"
            )
        set = canonical_set(set)
        for name, cap in (("max_docs", max_docs), ("max_docs_per_category", max_docs_per_category)):
            if cap is not None and cap < 1:
                raise InputError(f"{name} must be a positive integer or None, got {cap}")
        self.summary_field = summary_field
        self.require_summary = require_summary
        self.set = set
        self.max_docs = max_docs
        self.max_docs_per_category = max_docs_per_category

    def describe(self) -> str:
        """The roots and filter, as shown in errors and logs."""
        cats = "all" if self.categories == CATEGORIES else ",".join(self.categories)
        roots = ", ".join(str(r) for r in self.roots)
        return (
            f"roots [{roots}] with categories={cats}, set={self.set}, "
            f"summary_field={self.summary_field}"
        )

    def fingerprint(self) -> str:
        """Hash of the options and every candidate file's path, size and mtime (no parsing)."""
        digest = hashlib.sha256()
        options = {
            "source": "aihub582",
            "loader": _LOADER_VERSION,
            "normalization": NORMALIZATION_VERSION,
            "categories": list(self.categories),
            "set": self.set,
            "summary_field": self.summary_field,
            "require_summary": self.require_summary,
            "max_docs": self.max_docs,
            "max_docs_per_category": self.max_docs_per_category,
        }
        digest.update(json.dumps(options, sort_keys=True).encode())
        for root in self.roots:
            for path, _ in _list_files(root):
                try:
                    stat = os.stat(path)
                    signature = f"{stat.st_size}\0{stat.st_mtime_ns}"
                except OSError:  # e.g. a dangling link: load() reports it as skipped
                    signature = "unreadable"
                digest.update(f"{path}\0{signature}\n".encode())
        return digest.hexdigest()

    def load(self) -> AihubLoadResult:
        """Parse and normalise every matching document; raise NoDocumentsError if none."""
        result = AihubLoadResult(examples=[])
        with ExitStack() as stack:
            archives: dict[str, zipfile.ZipFile] = {}
            entries: list[_Entry] = []
            for root in self.roots:
                entries += self._entries(root, archives, stack, result.skipped)
            self._load_entries(entries, archives, result)
        if not result.examples:
            raise NoDocumentsError(self._no_documents_message(entries, result))
        return result

    def _no_documents_message(self, entries: list[_Entry], result: LoadResult) -> str:
        found = Counter(
            f"{_set_and_split(e.parts)[0] or 'no set'}/{_category_from_name(e.name) or '?'}"
            for e in entries
        )
        found_text = ", ".join(f"{k}: {n}" for k, n in sorted(found.items())) or "none"
        message = (
            f"no documents found in {self.describe()}. "
            f"Candidate files by set/category: {found_text}."
        )
        if result.skipped:
            message += " " + result.skip_summary(limit=5)
        return message

    def _entries(
        self,
        root: Path,
        archives: dict[str, zipfile.ZipFile],
        stack: ExitStack,
        skipped: list[SkippedRecord],
    ) -> list[_Entry]:
        """Candidate document files below one root, sorted by path; unreadable zips skipped."""
        entries: list[_Entry] = []
        for path, parts in _list_files(root):
            name = os.path.basename(path)
            if not _is_zip(name):
                entries.append(_Entry(path, name, parts))
                continue
            try:
                archive = stack.enter_context(zipfile.ZipFile(path))
                infos = archive.infolist()
            except (OSError, zipfile.BadZipFile) as exc:
                skipped.append(SkippedRecord(path, f"cannot open zip file: {exc}"))
                continue
            archives[path] = archive
            folders: dict[str, tuple[str, ...]] = {"": (*parts, name)}
            for info in infos:
                member = _member_name(info)
                folder, _, member_name = member.rpartition("/")
                if folder not in folders:
                    folders[folder] = (*parts, name, *(p for p in folder.split("/") if p))
                member_parts = folders[folder]
                if info.is_dir() or not _is_document_name(member_name, member_parts):
                    continue
                entry = _Entry(f"{path}!/{member}", member_name, member_parts, path, info)
                entries.append(entry)
        entries.sort(key=lambda e: e.path)
        return entries

    def _load_entries(
        self,
        entries: list[_Entry],
        archives: dict[str, zipfile.ZipFile],
        result: AihubLoadResult,
    ) -> None:
        selected = frozenset(self.categories)
        per_category: Counter[str] = Counter()
        cap = self.max_docs_per_category

        def admit(category: str | None, path: str) -> bool:
            """Whether to load a document of `category`; an unknown one is reported skipped,
            except from inference inputs, where the category plays no part."""
            if category not in CATEGORIES:
                if not self.require_summary:
                    return True
                result.skipped.append(SkippedRecord(path, _unknown(category)))
                return False
            return category in selected and (cap is None or per_category[category] < cap)

        first_seen: dict[str, str] = {}
        path_info: dict[tuple[str, ...], tuple[str | None, str | None]] = {}
        progress = tqdm(
            entries,
            desc="AI-Hub 582",
            unit="file",
            file=sys.stderr,
            leave=False,
            disable=len(entries) < PROGRESS_MIN_FILES or not sys.stderr.isatty(),
        )
        for entry in progress:
            if entry.parts not in path_info:
                path_info[entry.parts] = _set_and_split(entry.parts)
            doc_set, split = path_info[entry.parts]
            if self.set != "both" and doc_set != self.set:
                continue
            category = _category_from_name(entry.name)
            if category is not None and not admit(category, entry.path):
                continue
            try:
                ex_id, doc_id, text, summary, doc_type = _parse(
                    _read(entry, archives), self.summary_field, self.require_summary
                )
            except _BadDocument as exc:
                result.skipped.append(SkippedRecord(entry.path, str(exc)))
                continue
            if category is None:
                category = doc_type
                if not admit(category, entry.path):
                    continue
            ex_id = ex_id or entry.name.rsplit(".", 1)[0]
            if ex_id in first_seen:
                reason = f"duplicate id {ex_id!r} (first loaded from {first_seen[ex_id]})"
                result.skipped.append(SkippedRecord(entry.path, reason))
                continue
            first_seen[ex_id] = entry.path
            doc_id = doc_id or doc_id_from_passage_id(ex_id)
            result.examples.append(
                SummaryExample(ex_id, text, summary, category, doc_id=doc_id, split=split)
            )
            result.sets[ex_id] = doc_set
            per_category[category] += 1
            if self.max_docs is not None and len(result.examples) >= self.max_docs:
                break
        progress.close()


def _resolve_categories(categories: Sequence[str] | str | None) -> tuple[str, ...]:
    if categories is None:
        return CATEGORIES
    names = categories.split(",") if isinstance(categories, str) else list(categories)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise InputError("categories must name at least one category (or be None/'all')")
    if "all" in names:
        return CATEGORIES
    unknown = sorted(set(names) - set(CATEGORIES))
    if unknown:
        raise InputError(f"unknown categories {unknown}; known: {', '.join(CATEGORIES)}")
    return tuple(c for c in CATEGORIES if c in names)


def _is_zip(path: str) -> bool:
    return path.lower().endswith(".zip")


def _is_document_name(name: str, parts: Sequence[str]) -> bool:
    """A .json file that is not macOS archive debris (`__MACOSX/`, `._name`)."""
    return name.lower().endswith(".json") and not name.startswith("._") and "__MACOSX" not in parts


def _list_files(root: Path) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(path, folders from the root's name down to the file) of the JSON and zip files below
    `root`, sorted; `root` itself (with no folders) when it is a file. Folders above the root are
    left out so that, say, a user named "val" does not put every document in the val split."""
    if root.is_file():
        yield str(root), ()
        return
    top, name = str(root), root.resolve().name
    for directory, subdirs, files in os.walk(top):
        subdirs[:] = sorted(d for d in subdirs if d != "__MACOSX")
        relative = os.path.relpath(directory, top)
        parts = (name,) if relative == "." else (name, *relative.split(os.sep))
        for file_name in sorted(files):
            if _is_zip(file_name) or _is_document_name(file_name, ()):
                yield os.path.join(directory, file_name), parts


def _member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's real name, with `/` between folders: zipfile decodes names without the
    UTF-8 flag as cp437, while Korean archivers write UTF-8 or CP949 there (re-decoded when
    that gives a printable name), and Windows archivers may separate folders with `\\`."""
    return _decoded_member_name(info).replace("\\", "/")


def _decoded_member_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & _ZIP_UTF8_FLAG:
        return info.filename
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    for encoding in ("utf-8", "cp949"):
        try:
            name = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if name.isprintable():
            return name
    return info.filename


def _set_and_split(parts: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(set, official split) from directory components; the deepest matching component wins."""
    doc_set = split = None
    for part in reversed(parts):
        if doc_set is None:
            doc_set = next((name for name, pat in _SET_PATTERNS if pat.search(part)), None)
        if split is None:
            words = _WORD.findall(part.lower())
            split = next((_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS), None)
            split = split or next((s for word, s in _SPLIT_KOREAN if word in part), None)
    return doc_set, split


def _category_from_name(name: str) -> str | None:
    """`news_r` from `REPORT-news_r-00001-00001.json`; None when the name has no such field."""
    match = _NAME_CATEGORY.match(name)
    return match.group(1).lower() if match else None


def _unknown(category: str | None) -> str:
    return f"unknown category {category!r} (known: {', '.join(CATEGORIES)})"


def doc_id_from_passage_id(passage_id: str) -> str:
    """`REPORT-news_r-00003` from AI-Hub passage id `REPORT-news_r-00003-00001` (its article),
    for records without a doc_id; any other id (`news-sports-7`, an article id without its
    passage number) is its own document."""
    match = _PASSAGE_ID.match(passage_id)
    return match.group(1) if match and match.group(2).lower() in CATEGORIES else passage_id


# What reading a file or zip member raises when it is unreadable: I/O errors, corrupt archive
# data (bad CRC, bad deflate stream), encrypted members, unsupported compression (Deflate64).
_READ_ERRORS = (OSError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError)


def _read(entry: _Entry, archives: dict[str, zipfile.ZipFile]) -> bytes:
    try:
        if entry.archive is None:
            with open(entry.path, "rb") as handle:
                return handle.read()
        return archives[entry.archive].read(entry.member)
    except _READ_ERRORS as exc:
        raise _BadDocument(f"cannot read: {exc}") from None


def _text_field(mapping: dict, key: str, where: str = "") -> str:
    """`mapping[key]` normalised; "" when absent or null. With `where` (the field's path), a
    value of another type is a bad document, named as such (not reported as missing)."""
    value = mapping.get(key)
    if value is None or isinstance(value, str):
        return normalize_text(value) if value else ""
    if where:
        raise _BadDocument(f"{where}.{key} is {type(value).__name__}, expected a string")
    return ""


def _parse(
    raw: bytes, summary_field: str, require_summary: bool = True
) -> tuple[str, str, str, str, str | None]:
    """(passage id, doc id, text, summary, doc_type) of one file; ids may be "" when absent,
    and the summary too unless `require_summary`."""
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _BadDocument(f"not UTF-8 (invalid byte at offset {exc.start})") from None
    if not decoded.strip():
        raise _BadDocument("empty file")
    try:
        data = json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise _BadDocument(
            f"invalid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise _BadDocument("invalid document: top level is not a JSON object")
    refine = data.get("Meta(Refine)")
    text = _text_field(refine, "passage", "Meta(Refine)") if isinstance(refine, dict) else ""
    if not text and require_summary:  # an inference input keeps its row, with nothing to summarise
        raise _BadDocument("empty passage (Meta(Refine).passage absent, null or blank)")
    annotation = data.get("Annotation")
    if not isinstance(annotation, dict) and require_summary:
        found = "missing" if annotation is None else f"is {type(annotation).__name__}"
        raise _BadDocument(f"'Annotation' {found}, expected an object")
    where = "Annotation" if require_summary else ""  # inference inputs need no summary
    summary = _text_field(annotation, summary_field, where) if isinstance(annotation, dict) else ""
    if not summary and require_summary:
        raise _BadDocument(f"missing summary: Annotation.{summary_field} is absent, null or blank")
    meta = data.get("Meta(Acqusition)", data.get("Meta(Acquisition)"))
    meta = meta if isinstance(meta, dict) else {}
    doc_type = meta.get("doc_type")
    return (
        _text_field(refine, "passage_id") if isinstance(refine, dict) else "",
        _text_field(meta, "doc_id"),
        text,
        summary,
        doc_type.strip().lower() if isinstance(doc_type, str) else None,
    )
