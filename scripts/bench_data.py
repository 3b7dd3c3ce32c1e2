"""Benchmark of corpus loading and the tokenised cache at full AI-Hub scale (~160k documents).

Replicates the 350 real samples in ../shared/data (or, where they are absent, a synthetic corpus)
to `--docs` files in a temporary folder laid out like the real delivery, with unique ids spread
over the ten categories, then times
- `AihubSource.fingerprint()` and `AihubSource.load()` (read, parse, normalise), from the folders
  and, with `--zip`, from one zip of them;
- `SummarizationDataModule.setup()` with a byte-level BPE tokenizer and the seed's 1024/128
  lengths: the first load (parse, normalise, split, tokenise, write the cache) and the cached
  reload by a new data module with the same settings;
- with `--defects FRACTION`: `AihubSource.load()` of a corpus with that fraction of documents
  broken in every known way (`kosum.data.corruption`), against the same documents intact, both
  with a fifth of them in a zip: the ratio of the two load times (issue #19 asks for <= 2).
`build_replica` is importable for other benchmarks.

    .venv/bin/python scripts/bench_data.py --docs 20000 [--zip] [--vocab-size 8000]
    .venv/bin/python scripts/bench_data.py --docs 10000 --defects 0.01

Not for: correctness checks (the tests do that); numbers depend on disk and page cache.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from kosum.data.aihub import CATEGORIES, AihubSource
from kosum.data.corruption import DEFECTS, NAME_DEFECTS, document_like, write_corpus
from kosum.data.datamodule import SummarizationDataModule
from kosum.data.prompts import PromptTemplate
from kosum.data.synthetic import generate_corpus
from kosum.models.tokenizer_training import train_bpe_tokenizer

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "aihub582_sample"
VALIDATION_EVERY = 10  # every 10th replica goes to Validation, the rest to Training
SEED_PROMPT = PromptTemplate("불필요한 내용은 생략하고 핵심 내용을 간단하게 한줄 요약: {text}")
TOKENIZER_TRAINING_DOCS = 2_000


def _templates(tmp_dir: Path) -> list[tuple[bytes, str]]:
    """(file bytes, passage id) of the documents to replicate: real samples, else synthetic."""
    source = SAMPLES
    if not source.is_dir():
        source = generate_corpus(tmp_dir / "templates", docs_per_category=35)
    templates = []
    for path in sorted(source.rglob("*.json")):
        raw = path.read_bytes()
        templates.append((raw, json.loads(raw)["Meta(Refine)"]["passage_id"]))
    return templates


def build_replica(tmp_dir: str | Path, n_docs: int) -> Path:
    """Write `n_docs` AI-Hub files (copies with new ids, round-robin over categories) under
    `<tmp_dir>/replica/2~3sent/{Training,Validation}/<category>/` and return the replica root.

    Only the ids and doc_type change (byte substitution), so every copy keeps the real layout.
    """
    tmp_dir = Path(tmp_dir)
    templates = _templates(tmp_dir)
    root = tmp_dir / "replica"
    for i in range(n_docs):
        raw, passage_id = templates[i % len(templates)]
        _, old_category, old_number, _ = passage_id.split("-")
        category = CATEGORIES[i % len(CATEGORIES)]
        doc_id = f"REPORT-{category}-{i // len(CATEGORIES) + 1:05d}"
        data = raw.replace(passage_id.encode(), f"{doc_id}-00001".encode())
        data = data.replace(f"REPORT-{old_category}-{old_number}".encode(), doc_id.encode())
        data = data.replace(
            f'"doc_type": "{old_category}"'.encode(), f'"doc_type": "{category}"'.encode()
        )
        split = "Validation" if i % VALIDATION_EVERY == 0 else "Training"
        target = root / "2~3sent" / split / category / f"{doc_id}-00001.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def zip_replica(root: Path) -> Path:
    """The replica as one deflated zip beside it (how AI-Hub delivers the data)."""
    archive_path = root.with_suffix(".zip")
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*.json")):
            archive.write(path, path.relative_to(root.parent))
    return archive_path


def time_load(root: Path) -> dict[str, float]:
    """Seconds for the fingerprint and the full load, and the load's documents per second."""
    source = AihubSource(root)
    start = time.perf_counter()
    source.fingerprint()
    fingerprint_s = time.perf_counter() - start
    start = time.perf_counter()
    result = source.load()
    load_s = time.perf_counter() - start
    return {
        "documents": len(result.examples),
        "skipped": len(result.skipped),
        "fingerprint_s": round(fingerprint_s, 3),
        "load_s": round(load_s, 3),
        "docs_per_s": round(len(result.examples) / load_s),
    }


def time_tokenized_cache(root: Path, cache_dir: Path, vocab_size: int) -> dict[str, float]:
    """Seconds for the first `setup()` (parse → split → tokenise → write cache) and for the
    cached reload by a new data module, with a BPE tokenizer trained beforehand (not timed) on
    the first documents. The reloaded splits are checked against the first ones."""
    sample = AihubSource(root, max_docs=TOKENIZER_TRAINING_DOCS).load().examples
    tokenizer = train_bpe_tokenizer(
        [e.text for e in sample] + [e.summary for e in sample], vocab_size
    )

    def setup() -> tuple[SummarizationDataModule, float]:
        datamodule = SummarizationDataModule(
            AihubSource(root),
            SEED_PROMPT,
            max_source_length=1024,
            max_target_length=128,
            cache_dir=cache_dir,
        )
        datamodule.set_tokenizer(tokenizer)
        start = time.perf_counter()
        datamodule.setup()
        return datamodule, time.perf_counter() - start

    first, first_s = setup()
    cached, cached_s = setup()
    assert (first.data_summary["cache"], cached.data_summary["cache"]) == ("miss", "hit")
    for name, split in first.splits.items():
        reloaded = cached.splits[name]
        assert np.array_equal(split.source_tokens, reloaded.source_tokens), name
        assert split.ids == reloaded.ids and split.references == reloaded.references, name
    documents = sum(len(split) for split in first.splits.values())
    train = first.splits["train"]
    return {
        "documents": documents,
        "mean_source_tokens": round(float(train.source_lengths().mean()), 1),
        "cache_mb": round(sum(f.stat().st_size for f in cache_dir.rglob("*")) / 2**20, 1),
        "first_load_s": round(first_s, 3),
        "first_load_docs_per_s": round(documents / first_s),
        "cached_reload_s": round(cached_s, 3),
        "speedup": round(first_s / cached_s, 1),
    }


def time_defective_load(tmp_dir: Path, n_docs: int, fraction: float) -> dict[str, float]:
    """Load times of `n_docs` documents intact and with `fraction` of them broken (every
    defect in turn; name defects on zip members), and their ratio, best of three each."""
    template = json.loads(_templates(tmp_dir)[0][0])
    documents = [document_like(template, n, CATEGORIES[n % len(CATEGORIES)]) for n in range(n_docs)]
    zipped = range(n_docs - n_docs // 5, n_docs)
    kinds = [DEFECTS[k % len(DEFECTS)] for k in range(round(n_docs * fraction))]
    in_names = [kind for kind in kinds if kind in NAME_DEFECTS]
    in_files = [kind for kind in kinds if kind not in NAME_DEFECTS]
    rng = random.Random(0)
    defects = dict(zip(rng.sample(range(zipped.start), len(in_files)), in_files, strict=True))
    defects |= dict(zip(rng.sample(zipped, len(in_names)), in_names, strict=True))
    timings = {}
    for name, broken in (("intact", {}), ("defective", defects)):
        corpus = write_corpus(tmp_dir / name, documents, broken, zipped)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            result = AihubSource(corpus.root).load()
            best = min(best, time.perf_counter() - start)
        assert {e.id for e in result.examples} == corpus.good_ids, name
        timings[f"{name}_load_s"] = round(best, 3)
        timings[f"{name}_skipped"] = len(result.skipped)
    timings["defective_over_intact"] = round(
        timings["defective_load_s"] / timings["intact_load_s"], 2
    )
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=160_000, help="documents to replicate")
    parser.add_argument("--zip", action="store_true", help="also time reading it from a zip")
    parser.add_argument("--vocab-size", type=int, default=8_000, help="BPE vocabulary size")
    parser.add_argument(
        "--defects", type=float, help="only time loading with this fraction of documents broken"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kosum-bench-") as tmp:
        if args.defects:
            print("defects:", json.dumps(time_defective_load(Path(tmp), args.docs, args.defects)))
            return
        start = time.perf_counter()
        root = build_replica(tmp, args.docs)
        print(f"replica: {args.docs} files in {time.perf_counter() - start:.1f} s ({root})")
        print("folders:", json.dumps(time_load(root)))
        if args.zip:
            print("zip:    ", json.dumps(time_load(zip_replica(root))))
        cache = time_tokenized_cache(root, Path(tmp) / "cache", args.vocab_size)
        print("tokenised cache:", json.dumps(cache))


if __name__ == "__main__":
    main()
