"""Benchmark of summary generation: the seed's one-at-a-time loop vs `generate_summaries`.

The model is kosum's `tiny_t5` architecture (`--shape pko-t5-large|pko-t5-base`: the real
models' shapes, for a GPU), randomly initialised (seed 0), with a byte-level BPE tokenizer
trained on the benchmark texts: the first `--texts` documents of
../shared/data/competition_sample.csv, or a synthetic corpus where that file is absent. A random
model never emits EOS, so every output runs to `max_length`: the worst case for batching (no
early-finishing rows) and equal work for every candidate.

For each decoding preset (conf/generation/<name>.yaml, unchanged), the baseline is the seed's
loop: `model.generate` on one tokenised text at a time, then decode and post-process. The
baseline and every candidate are timed in `--repeats` rounds (baseline first in each) and the
medians are compared, as the machine may be shared. Candidates: `generate_summaries` at each
batch size with every speed-up, then at `--ablation-batch-size` each one turned off in turn:
kosum's T5 path (`kosum.inference.t5_fast`), then also the cross-attention cache fix;
`torch.multinomial` instead of kosum's Gumbel beam sampling (same distribution, other values at
the same seed); transformers' top-k warper instead of kosum's (same output); a padded encoder
batch; no length sorting. Outputs are compared too: for deterministic presets, how many equal
the baseline's; for every preset, how many of each ablation's equal the full candidate's at the
same batch size and seed. docs/inference.md has the numbers.

    .venv/bin/python scripts/bench_predict.py --texts 64 --json out.json
    python scripts/bench_predict.py --shape pko-t5-large --device cuda --presets greedy,seed \
        --batch-sizes 8,16,32 --ablation-batch-size 16 --texts 32 --repeats 2 --json gpu.json

The default is torch's thread count (2 here); `--threads 1` on a shared machine, where the
one-at-a-time loop's tiny ops stall on a busy second core and the ratios swing with the load.

Not for: quality numbers (the model is untrained).
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from transformers import PreTrainedTokenizerBase, T5Config, T5ForConditionalGeneration

from kosum.config import config_dir
from kosum.data.aihub import AihubSource
from kosum.data.synthetic import generate_corpus
from kosum.generation import GenerationSettings
from kosum.inference.batched import autocast_for, generate_summaries
from kosum.io import write_json
from kosum.models.tokenizer_training import train_bpe_tokenizer

COMPETITION_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "competition_sample.csv"
SEED = 1234


def load_texts(count: int) -> tuple[list[str], str]:
    if COMPETITION_CSV.is_file():
        with COMPETITION_CSV.open(encoding="utf-8", newline="") as handle:
            texts = [row["text"] for row in csv.DictReader(handle)]
        return texts[:count], str(COMPETITION_CSV)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = generate_corpus(Path(tmp), docs_per_category=max(count // 10 + 1, 4))
        examples = AihubSource(corpus).load().examples
    return [e.text for e in examples][:count], "synthetic corpus (real data absent)"


# Random-init shapes of the real models (../shared/docs/MODELS.md), for a GPU run.
PKO_T5 = {
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "tie_word_embeddings": False,
    "d_kv": 64,
    "vocab_size": 50358,
}
SHAPES: dict[str, dict[str, Any]] = {
    "pko-t5-large": {
        **PKO_T5,
        "d_model": 1024,
        "d_ff": 2816,
        "num_heads": 16,
        "num_layers": 24,
        "num_decoder_layers": 24,
    },
    "pko-t5-base": {
        **PKO_T5,
        "d_model": 768,
        "d_ff": 2048,
        "num_heads": 12,
        "num_layers": 12,
        "num_decoder_layers": 12,
    },
}


def build_model(texts: list[str], shape: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """`shape` "tiny": kosum's tiny_t5 with a 2,000-token BPE; else a SHAPES entry, whose larger
    vocabulary the BPE does not fill (ids beyond it decode to nothing; the cost is the shape's)."""
    tokenizer = train_bpe_tokenizer(texts, vocab_size=2000)
    if shape == "tiny":
        config_path = Path(config_dir()) / "model" / "tiny_t5.yaml"
        settings = {"vocab_size": len(tokenizer), **OmegaConf.load(config_path)["init_config"]}
    else:
        settings = SHAPES[shape]
    torch.manual_seed(0)
    config = T5Config(
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **settings,
    )
    return T5ForConditionalGeneration(config).eval(), tokenizer


def preset(name: str) -> GenerationSettings:
    return instantiate(OmegaConf.load(Path(config_dir()) / "generation" / f"{name}.yaml"))


def one_at_a_time(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    settings: GenerationSettings,
    max_length: int,
) -> list[str]:
    """The seed's loop: tokenise, generate, decode one document at a time (on a GPU at the
    precision kosum uses there, bf16 autocast)."""
    summaries = []
    device = next(model.parameters()).device
    for text in texts:
        batch = tokenizer([text], return_tensors="pt", truncation=True, max_length=max_length)
        with autocast_for(device):
            sequences = model.generate(**batch.to(device), **settings.generate)
        summaries.append(
            settings.postprocess(tokenizer.decode(sequences[0], skip_special_tokens=True))
        )
    return summaries


def timed(run: Callable[[], list[str]]) -> tuple[list[str], float]:
    torch.manual_seed(SEED)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    outputs = run()  # decoded strings: the device has finished
    return outputs, time.perf_counter() - started


def bench_preset(
    name: str,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    batch_sizes: list[int],
    ablation_batch_size: int,
    max_length: int,
    repeats: int,
) -> dict[str, Any]:
    settings = preset(name)
    beams = settings.generate.get("num_beams", 1)
    sampling = bool(settings.generate.get("do_sample"))

    def baseline() -> list[str]:
        return one_at_a_time(model, tokenizer, texts, settings, max_length)

    def batched(batch_size: int, **options: bool) -> Callable[[], list[str]]:
        return lambda: (
            generate_summaries(
                model, tokenizer, texts, settings, batch_size, max_length, **options
            ).summaries
        )

    # Ablations at one batch size: each speed-up turned off in turn, compared with all of them on
    # at that size (measured too when --batch-sizes does not list it).
    size = ablation_batch_size
    candidates: list[tuple[str, Callable[[], list[str]]]] = [
        (f"batched {each}", batched(each)) for each in dict.fromkeys([*batch_sizes, size])
    ]
    candidates.append((f"batched {size}, no T5 fast path", batched(size, fast_t5=False)))
    if beams > 1:
        candidates.append(
            (
                f"batched {size}, stock cache",
                batched(size, fast_t5=False, keep_cross_attention=False),
            )
        )
    if beams > 1 and sampling:
        candidates.append((f"batched {size}, stock sampling", batched(size, gumbel_sampling=False)))
    if sampling:
        candidates.append((f"batched {size}, stock top-k", batched(size, exact_fast_top_k=False)))
    candidates.append((f"batched {size}, padded encoder", batched(size, encode_one_by_one=False)))
    candidates.append((f"batched {size}, unsorted", batched(size, sort_by_length=False)))

    # Rounds: the baseline, then every candidate, `repeats` times; medians over the rounds, so a
    # burst of load from elsewhere on the machine moves one sample, not the ratio.
    runs = [("one at a time", baseline), *candidates]
    seconds: dict[str, list[float]] = {label: [] for label, _ in runs}
    outputs: dict[str, list[str]] = {}
    for round_index in range(repeats):
        for label, run in runs:
            summaries, took = timed(run)  # seeded: every round draws the same samples
            seconds[label].append(took)
            outputs.setdefault(label, summaries)
            print(
                f"[{name}] round {round_index + 1}: {label}: {len(texts) / took:.2f} summaries/s",
                flush=True,
            )
    base_seconds = statistics.median(seconds["one at a time"])
    reference = outputs["one at a time"]
    # Sampled outputs depend on the batch composition, so the ablations are compared with the
    # full candidate of their batch size; deterministic presets also with the baseline.
    full = outputs[f"batched {size}"]
    results = []
    for label, _ in candidates:
        median = statistics.median(seconds[label])
        row: dict[str, Any] = {
            "candidate": label,
            "seconds": round(median, 2),
            "summaries_per_s": round(len(texts) / median, 3),
            "summaries_per_s_range": [
                round(len(texts) / max(seconds[label]), 3),
                round(len(texts) / min(seconds[label]), 3),
            ],
            "speedup": round(base_seconds / median, 2),
        }
        if not sampling:
            row["same_as_baseline"] = sum(
                a == b for a, b in zip(outputs[label], reference, strict=True)
            )
        if label.startswith(f"batched {size},"):
            row[f"same_as_batched_{size}"] = sum(
                a == b for a, b in zip(outputs[label], full, strict=True)
            )
        results.append(row)
        print(f"[{name}] {label}: {row['speedup']}x one-at-a-time (median)", flush=True)
    return {
        "preset": name,
        "generate": dict(settings.generate),
        "first_sentence": settings.first_sentence,
        "baseline_summaries_per_s": [round(len(texts) / t, 3) for t in seconds["one at a time"]],
        "candidates": results,
    }


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--presets", default="greedy,seed")
    parser.add_argument("--batch-sizes", default="8,16,32")
    parser.add_argument("--ablation-batch-size", type=int, default=16)
    parser.add_argument("--max-source-length", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: torch's; 1 on a busy machine)"
    )
    parser.add_argument("--shape", choices=["tiny", *SHAPES], default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    texts, source = load_texts(args.texts)
    model, tokenizer = build_model(texts, args.shape)
    model.to(args.device)
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    print(
        f"{len(texts)} texts from {source}; tokens mean {statistics.mean(lengths):.0f}, max "
        f"{max(lengths)}; {args.shape} on {device_name(args.device)}; torch {torch.__version__},"
        f" {torch.get_num_threads()} threads",
        flush=True,
    )
    warm_up = tokenizer(texts[:2], return_tensors="pt", padding=True).to(args.device)
    with torch.inference_mode(), autocast_for(torch.device(args.device)):
        model.generate(**warm_up, max_length=5)  # first-call allocations and lazy imports
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    report = {
        "texts": len(texts),
        "source": source,
        "input_tokens_mean": round(statistics.mean(lengths), 1),
        "shape": args.shape,
        "device": device_name(args.device),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "presets": [
            bench_preset(
                name,
                model,
                tokenizer,
                texts,
                batch_sizes,
                args.ablation_batch_size,
                args.max_source_length,
                args.repeats,
            )
            for name in args.presets.split(",")
        ],
    }
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
