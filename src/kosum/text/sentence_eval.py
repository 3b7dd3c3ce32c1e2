"""How well sentence splitters recover known sentence boundaries in AI-Hub 582 documents.

    python -m kosum.text.sentence_eval [../shared/data/aihub582_sample] [--json]

Gold sentences come from the raw AI-Hub JSON files. Each `passage` holds one sentence per line:
the data set's own segmentation, made by breaking after every ". ", which is almost always right
in this text, with two mechanical artefacts that are repaired here: a decimal or date broken at
its point (`34.` / `8%`, merged again) and a closing quote carried to the next line (moved back).
Quotations of several sentences stay split in the gold, as the source splits them.

Three sets are scored:

* `summary2`: the 2-3 extractive sentences, for the documents whose `summary2` is exactly a
  sequence of (repaired) passage lines joined by spaces; gold = those lines.
* `summary1`: the one-sentence abstractive summary (what a model is trained to produce); gold =
  the whole text, so any cut is an error. This is the `first_sentence` use case.
* `passage`: the whole passage; gold = the repaired lines.

Per set: documents split exactly right, first sentence right, boundary precision/recall/F1,
and time per document. Splitters: kosum's rule-based splitter, the regex kosum used before it,
nltk's Punkt without training data (always available), nltk's English Punkt (`sent_tokenize`,
the seed's choice; needs the `punkt_tab` data, which this machine cannot download) and kss
(when installed). Unavailable splitters are reported as such.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kosum.data.normalize import normalize_text
from kosum.text.sentences import split_sentences

Splitter = Callable[[str], list[str]]
DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "aihub582_sample"
# The source breaks lines after "." only; questions and exclamations end sentences too.
_QUESTION_OR_EXCLAMATION_END = re.compile(r"(?<![(\[])[?!]+[”’\"')\]]*(?=\s)")
_CLOSING_AT_START = re.compile(r"^([”’\"']+)(?:\s|$)")
_NAIVE_END = re.compile(r"[.?!][\"'”’)\]]*(?=\s)")


@dataclass(frozen=True)
class GoldDocument:
    id: str
    passage: list[str]
    summary1: str
    summary2: list[str] | None  # None when summary2 is not a run of passage lines


@dataclass
class Scores:
    documents: int = 0
    exact: int = 0
    first_right: int = 0
    true_boundaries: int = 0
    predicted_boundaries: int = 0
    correct_boundaries: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        precision = (
            self.correct_boundaries / self.predicted_boundaries
            if self.predicted_boundaries
            else 1.0
        )
        recall = self.correct_boundaries / self.true_boundaries if self.true_boundaries else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "documents": self.documents,
            "exact": round(self.exact / self.documents, 4) if self.documents else 0.0,
            "first_sentence": round(self.first_right / self.documents, 4)
            if self.documents
            else 0.0,
            "boundary_precision": round(precision, 4),
            "boundary_recall": round(recall, 4),
            "boundary_f1": round(f1, 4),
            "ms_per_document": round(1000 * self.seconds / max(self.documents, 1), 3),
        }


def passage_lines(raw_passage: str) -> list[str]:
    """The passage's sentences: its normalised lines, with the line-break artefacts repaired."""
    lines: list[str] = []
    for raw in raw_passage.split("\n"):
        line = normalize_text(raw)
        if not line:
            continue
        closing = _CLOSING_AT_START.match(line)
        if closing and lines:
            lines[-1] += closing.group(1)
            line = line[closing.end() :].strip()
            if not line:
                continue
        if lines and lines[-1][-2:-1].isdigit() and lines[-1].endswith(".") and line[0].isdigit():
            lines[-1] += " " + line
            continue
        cuts = [0, *(m.end() for m in _QUESTION_OR_EXCLAMATION_END.finditer(line)), len(line)]
        lines.extend(line[a:b].strip() for a, b in itertools.pairwise(cuts) if a < b)
    return lines


def _as_line_run(text: str, lines: list[str]) -> list[str] | None:
    """`text` as a sequence of `lines` joined by single spaces, if it is one."""
    if not text:
        return []
    for line in sorted(set(lines), key=len, reverse=True):
        if text == line:
            return [line]
        if text.startswith(line + " "):
            rest = _as_line_run(text[len(line) + 1 :], lines)
            if rest is not None:
                return [line, *rest]
    return None


def load_gold(root: str | Path) -> list[GoldDocument]:
    documents = []
    for path in sorted(Path(root).rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        lines = passage_lines(data["Meta(Refine)"]["passage"])
        annotation = data["Annotation"]
        summary2 = normalize_text(annotation.get("summary2") or "")
        documents.append(
            GoldDocument(
                id=data["Meta(Refine)"]["passage_id"],
                passage=lines,
                summary1=normalize_text(annotation.get("summary1") or ""),
                summary2=_as_line_run(summary2, lines) if summary2 else None,
            )
        )
    return documents


def _boundaries(sentences: list[str]) -> set[int]:
    """Sentence ends as counts of non-space characters before them (whitespace-insensitive)."""
    ends, count = set(), 0
    for sentence in sentences[:-1]:
        count += sum(1 for char in sentence if not char.isspace())
        ends.add(count)
    return ends


def score(splitter: Splitter, cases: Iterable[tuple[str, list[str]]]) -> Scores:
    """Score `splitter` on (text, gold sentences) pairs."""
    scores = Scores()
    for text, gold in cases:
        started = time.perf_counter()
        predicted = [s.strip() for s in splitter(text) if s.strip()]
        scores.seconds += time.perf_counter() - started
        gold_ends, predicted_ends = _boundaries(gold), _boundaries(predicted)
        scores.documents += 1
        scores.exact += predicted_ends == gold_ends
        scores.first_right += bool(predicted) and predicted[0] == gold[0]
        scores.true_boundaries += len(gold_ends)
        scores.predicted_boundaries += len(predicted_ends)
        scores.correct_boundaries += len(gold_ends & predicted_ends)
    return scores


def gold_sets(documents: list[GoldDocument]) -> dict[str, list[tuple[str, list[str]]]]:
    return {
        "summary2": [(" ".join(d.summary2), d.summary2) for d in documents if d.summary2],
        "summary1": [(d.summary1, [d.summary1]) for d in documents if d.summary1],
        "passage": [(" ".join(d.passage), d.passage) for d in documents if d.passage],
    }


def _naive_regex(text: str) -> list[str]:
    """Cut after every . ? ! (and closing quotes) before whitespace: what kosum did before."""
    cuts = [0, *(match.end() for match in _NAIVE_END.finditer(text)), len(text)]
    return [text[start:end] for start, end in itertools.pairwise(cuts)]


def available_splitters() -> tuple[dict[str, Splitter], dict[str, str]]:
    """The splitters that can run here, and why each of the others cannot."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    splitters: dict[str, Splitter] = {
        "kosum": split_sentences,
        "naive_regex": _naive_regex,
        "punkt_untrained": PunktSentenceTokenizer().tokenize,
    }
    missing: dict[str, str] = {}
    try:
        import nltk

        nltk.data.find("tokenizers/punkt_tab/english/")
        splitters["punkt_english"] = nltk.sent_tokenize
    except LookupError:
        missing["punkt_english"] = (
            "nltk's punkt_tab data is not installed (nltk.download needs network)"
        )
    try:
        import kss
    except ImportError:
        missing["kss"] = "kss is not installed"
    else:
        splitters["kss"] = kss.split_sentences
    return splitters, missing


def compare(root: str | Path) -> dict[str, object]:
    documents = load_gold(root)
    sets = gold_sets(documents)
    splitters, missing = available_splitters()
    results = {
        name: {set_name: score(splitter, cases).as_dict() for set_name, cases in sets.items()}
        for name, splitter in splitters.items()
    }
    return {
        "data": str(root),
        "documents": len(documents),
        "summary2_as_passage_lines": len(sets["summary2"]),
        "results": results,
        "unavailable": missing,
    }


def _print_table(report: dict) -> None:
    print(
        f"{report['documents']} documents; {report['summary2_as_passage_lines']} summary2 are runs "
        "of passage lines"
    )
    columns = ("exact", "first", "P", "R", "F1")
    print(f"{'splitter':<16} {'set':<9} " + " ".join(f"{c:>6}" for c in columns) + "   ms/doc")
    for name, by_set in report["results"].items():
        for set_name, s in by_set.items():
            print(
                f"{name:<16} {set_name:<9} {s['exact']:>6.3f} {s['first_sentence']:>6.3f} "
                f"{s['boundary_precision']:>6.3f} {s['boundary_recall']:>6.3f} "
                f"{s['boundary_f1']:>6.3f} {s['ms_per_document']:>8.3f}"
            )
    for name, reason in report["unavailable"].items():
        print(f"{name}: not run ({reason})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: {args.data} is not a folder of AI-Hub 582 JSON files", file=sys.stderr)
        return 2
    report = compare(args.data)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        _print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
