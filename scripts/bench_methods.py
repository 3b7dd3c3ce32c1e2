"""Parameter counts and training step time of LoRA, PEFT's prefix and kosum's prefix_encdec.

What is measured
----------------
* **Parameters at pko-t5-large's shape** (lcw99/t5-large-korean-text-summary, ../shared/docs/
  MODELS.md), built on the meta device (no weights, no download) from `conf/peft/*.yaml` as a run
  builds them: trainable parameters while training, and what the saved adapter holds (with
  `prefix_projection` the MLP is folded away).
* **Training step time on the tiny model** (`conf/model/tiny_t5.yaml`'s shape, vocabulary 2000):
  forward + backward + AdamW step on a fixed batch of `--batch` random documents of `--source`
  tokens with `--target`-token summaries, fp32, dropout on, kosum's CPU dropout
  (`fast_cpu_dropout`, as kosum-train uses on CPU). The methods run interleaved: each of
  `--repeats` rounds times every method for `--steps` steps (after `--warmup` untimed ones), in an
  order rotated every round; a method's ratio is the median over rounds of its step time over
  LoRA's in the same round.

    .venv/bin/python scripts/bench_methods.py            # ~1 min on 2 cores
    .venv/bin/python scripts/bench_methods.py --threads 1 --repeats 5

Not for: quality (the batch is random), GPU timings.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from kosum.config import config_dir
from kosum.methods.factory import apply_method, parameter_counts
from kosum.training.fast_dropout import enable_fast_cpu_dropout

# pko-t5-large / lcw99's fine-tune (../shared/docs/MODELS.md).
LARGE = {
    "vocab_size": 50358,
    "d_model": 1024,
    "d_ff": 2816,
    "d_kv": 64,
    "num_heads": 16,
    "num_layers": 24,
    "num_decoder_layers": 24,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
}
# (label, conf/peft option, overrides)
METHODS: list[tuple[str, str, dict]] = [
    ("lora r=8 q,v", "lora", {}),
    ("prefix (PEFT) 20", "prefix", {}),
    ("prefix_encdec 20/place", "prefix_encdec", {}),
    ("prefix_encdec 20/place, encoder only", "prefix_encdec", {"where": ["encoder"]}),
    (
        "prefix_encdec 20/place + MLP 512",
        "prefix_encdec",
        {"prefix_projection": True, "encoder_hidden_size": 512},
    ),
]


def method_spec(option: str, overrides: dict) -> object:
    """`conf/peft/<option>.yaml` with `overrides`, built as a run builds it."""
    node = OmegaConf.load(Path(config_dir()) / "peft" / f"{option}.yaml")
    node = OmegaConf.merge(node, overrides)
    if "tokenizer_name_or_path" in node:  # a run's own folder; unused by random init
        node.tokenizer_name_or_path = None
    return instantiate(node)


def large_counts() -> list[tuple[str, int, int]]:
    """(label, trainable while training, saved in the adapter) at pko-t5-large's shape."""
    rows = []
    for label, option, overrides in METHODS:
        with torch.device("meta"):
            model = apply_method(
                T5ForConditionalGeneration(T5Config(**LARGE)), method_spec(option, overrides)
            )
        trainable = parameter_counts(model)["trainable_params"]
        saved = trainable
        if hasattr(model, "prefixes"):  # the folded prefix: (layers, 2, heads, tokens, d_kv)
            saved = sum(table.full().numel() for table in model.prefixes.values())
        rows.append((label, trainable, saved))
    return rows


def tiny_model(vocab: int) -> nn.Module:
    settings = dict(OmegaConf.load(Path(config_dir()) / "model" / "tiny_t5.yaml").init_config)
    torch.manual_seed(0)
    special = {"decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1}  # pko-t5's
    return T5ForConditionalGeneration(T5Config(vocab_size=vocab, **special, **settings))


def step_times(args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per training step, one entry per round, for each method."""
    generator = torch.Generator().manual_seed(1)
    batch = {
        "input_ids": torch.randint(3, args.vocab, (args.batch, args.source), generator=generator),
        "labels": torch.randint(3, args.vocab, (args.batch, args.target), generator=generator),
    }
    runs = {}
    for label, option, overrides in METHODS:
        model = enable_fast_cpu_dropout(
            apply_method(tiny_model(args.vocab), method_spec(option, overrides))
        )
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        runs[label] = (model, torch.optim.AdamW(trainable, lr=1e-4))
    times: dict[str, list[float]] = {label: [] for label in runs}
    labels = list(runs)
    for round_index in range(args.repeats):
        order = labels[round_index % len(labels) :] + labels[: round_index % len(labels)]
        for label in order:
            model, optimizer = runs[label]
            for step in range(args.warmup + args.steps):
                if step == args.warmup:
                    started = time.perf_counter()
                loss = model(**batch).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            times[label].append((time.perf_counter() - started) / args.steps)
    return times


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--source", type=int, default=192, help="source tokens per document")
    parser.add_argument("--target", type=int, default=48, help="summary tokens per document")
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print("Parameters at pko-t5-large's shape (24+24 layers, d_model 1024, 16 heads x 64)")
    print(f"{'method':40} {'trainable':>12} {'saved':>12} {'saved/base':>9}")
    with torch.device("meta"):
        base = sum(p.numel() for p in T5ForConditionalGeneration(T5Config(**LARGE)).parameters())
    for label, trainable, saved in large_counts():
        print(f"{label:40} {trainable:12,d} {saved:12,d} {100 * saved / base:8.3f}%")
    print(f"{'(the base model)':40} {base:12,d}")
    print(
        f"\nTraining step on the tiny model (batch {args.batch}, {args.source}/{args.target} "
        f"tokens, {torch.get_num_threads()} threads, {args.repeats} rounds x {args.steps} steps)"
    )
    times = step_times(args)
    baseline = METHODS[0][0]
    print(f"{'method':40} {'ms/step':>9} {'vs LoRA':>8}")
    for label, seconds in times.items():
        ratios = [t / b for t, b in zip(seconds, times[baseline], strict=True)]
        print(
            f"{label:40} {1000 * statistics.median(seconds):9.1f} {statistics.median(ratios):7.2f}x"
        )


if __name__ == "__main__":
    main()
