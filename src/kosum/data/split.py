"""Deterministic train/val/test assignment by document id.

Every decision is a function of `sha256(salt, doc_id)`, so a split is identical across runs,
machines and Python processes (unlike `hash()`), independent of input order, and keeps all
passages of one article (same `doc_id`) on the same side.

Rules of `split_examples`:
- Official mode (`use_official=True` and at least one example comes from an official validation
  split, e.g. AI-Hub's `Validation` folder): official train documents → train; official
  validation documents are divided by doc-id hash into val and test halves (AI-Hub publishes no
  test split; the halves are of equal expected size whatever the fractions). Documents with no
  official split fall back to the hash split below. An article whose passages straddle the
  official split goes to train whole, so no text is both trained on and evaluated on. Data that
  is all official validation (nothing to train on) is split in hash mode, with a warning.
- Hash mode (otherwise): a document goes to test when its hash fraction is below
  `test_fraction`, to val below `test_fraction + val_fraction`, else to train.
- Tiny datasets: when a split is empty but there are at least three documents, the document
  with the smallest hash in the largest split moves to it, until all three are non-empty.

Not for: loading (see the sources) or cross-validation folds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from kosum.data.example import SummaryExample
from kosum.errors import InputError

log = logging.getLogger(__name__)

# Part of the tokenised-dataset cache key: bumped whenever a rule below assigns some document
# elsewhere (2: data that is all official validation is hash-split).
SPLIT_RULES_VERSION = 2

SPLITS: tuple[str, ...] = ("train", "val", "test")


def hash_fraction(doc_id: str, salt: str = "kosum") -> float:
    """A stable pseudo-random number in [0, 1) for `doc_id`."""
    digest = hashlib.sha256(f"{salt}\0{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(
    doc_id: str, val_fraction: float, test_fraction: float, salt: str = "kosum"
) -> str:
    """ "train", "val" or "test" for a document, from its id's hash alone."""
    _check_fractions(val_fraction, test_fraction)
    return _by_fraction(hash_fraction(doc_id, salt), val_fraction, test_fraction)


def split_examples(
    examples: Iterable[SummaryExample],
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    salt: str = "kosum",
    use_official: bool = True,
) -> dict[str, list[SummaryExample]]:
    """{"train", "val", "test"} → examples, input order kept within each split (rules above)."""
    _check_fractions(val_fraction, test_fraction)
    examples = list(examples)
    official: dict[str, set[str | None]] = {}
    for example in examples:
        official.setdefault(example.doc_id, set()).add(example.split)
    official_mode = use_official and any("val" in splits for splits in official.values())
    if official_mode and all(splits == {"val"} for splits in official.values()):
        # official validation data alone (e.g. AI-Hub's *_validation.zip): official mode would
        # leave nothing to train on but what the tiny-dataset rule moves there
        log.warning(
            "every document comes from the official validation split: splitting them by hash "
            "(val_fraction/test_fraction) instead, so that there is training data"
        )
        official_mode = False
    if official_mode:
        log.info(
            "official validation split found: its articles make val and test (half each); "
            "val_fraction/test_fraction apply only without it (use_official_split=false)"
        )

    keys = {doc_id: hash_fraction(doc_id, salt) for doc_id in official}
    assignment: dict[str, str] = {}
    for doc_id, splits in official.items():
        key = keys[doc_id]
        if official_mode and "train" in splits:
            assignment[doc_id] = "train"
        elif official_mode and "val" in splits:
            assignment[doc_id] = _by_fraction(key, 0.5, 0.5)
        else:
            assignment[doc_id] = _by_fraction(key, val_fraction, test_fraction)
    _fill_empty_splits(assignment, keys)

    result: dict[str, list[SummaryExample]] = {name: [] for name in SPLITS}
    for example in examples:
        result[assignment[example.doc_id]].append(example)
    return result


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise InputError(
            "val_fraction and test_fraction must be >= 0 and sum to less than 1, "
            f"got {val_fraction} and {test_fraction}"
        )


def _by_fraction(key: float, val_fraction: float, test_fraction: float) -> str:
    if key < test_fraction:
        return "test"
    if key < test_fraction + val_fraction:
        return "val"
    return "train"


def _fill_empty_splits(assignment: dict[str, str], keys: dict[str, float]) -> None:
    """Move smallest-hash documents out of the largest split into empty ones (≥3 documents)."""
    if len(assignment) < 3:
        return
    for empty in SPLITS:
        members = {name: [d for d, s in assignment.items() if s == name] for name in SPLITS}
        if members[empty]:
            continue
        donor = max(SPLITS, key=lambda name: len(members[name]))
        assignment[min(members[donor], key=lambda d: (keys[d], d))] = empty
