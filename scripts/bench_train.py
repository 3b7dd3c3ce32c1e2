"""Training throughput of kosum's training path against a seed-style loop and HF Seq2SeqTrainer.

What is measured
----------------
Every variant trains the same model, built from the same seed: a random-init T5 (d_model 256,
d_ff 1024, 4+4 layers, 4 heads; 9.4M parameters) with LoRA on q,v (r=8, alpha=32, dropout 0.1),
fp32, AdamW (lr 2e-4) with a linear schedule, on the first `--docs` documents of
../shared/data/competition_sample.csv (or, where ../shared is absent, of kosum's synthetic
AI-Hub corpus), tokenised with a byte-level BPE (8k vocabulary) trained on those documents and
truncated to 1024/128 tokens. This is the setup of ../shared/docs/PERF_ANCHORS.md.

* `seed`: the seed's loop: everything padded to 1024/128 up front, shuffled batches of 4,
  plain PyTorch (forward, backward, optimiser and scheduler step, `loss.item()` each step);
* `hf`: transformers' `Seq2SeqTrainer` + `DataCollatorForSeq2Seq` (dynamic padding, random
  order, batch 4, no evaluation, no saving, `report_to="none"`, in-process data loading, its
  default optimiser);
* `kosum`: kosum's own components, with torch's stock dropout (`fast_cpu_dropout=false`):
  `TokenizedSplit` → `LengthGroupedBatchSampler` +
  `Seq2SeqCollator` (dynamic padding, length-grouped batches) → `SummarizationModule` under a
  Lightning `Trainer` configured as conf/trainer/cpu.yaml (cpu, fp32, deterministic) without
  logger, checkpointing, validation or progress bar; one row per `--batch-sizes` entry;
* `kosum-fast`: the same, with the CPU dropout kosum trains with by default
  (`kosum.training.fast_dropout`: masks from 32 random bits per element instead of torch's
  `bernoulli_`);
* `kosum-nolog` (opt-in): `kosum` without the three `self.log` calls per training step.

How
---
A step is timed end to end, data loading included: the clock is read at the end of every
optimiser step (a plain loop, a `TrainerCallback.on_step_end`, a Lightning
`on_train_batch_end`), and the timed window runs from the end of the last of `--warmup` steps to
the end of the last timed step. Equal work: every variant trains on `--steps` × 4 examples in the
window (`--steps` × 4 / B steps at batch size B). "real" tokens are the non-pad source tokens plus
the target tokens (labels ≠ -100) of the batches in the window; "padded" tokens are the
positions actually computed (input_ids.numel() + labels.numel()). Throughput is tokens per
wall-clock second; tokens per CPU-second of the process (all threads) is printed beside it,
since the machine is often shared. Runs are interleaved: each of `--repeats` rounds runs every
(variant, batch size) once, in an order rotated every round, and each ratio is the median over
rounds of the same round's throughput ratio (variant / baseline).

    .venv/bin/python scripts/bench_train.py --threads 1          # full run (~13 min, busy 2 cores)
    .venv/bin/python scripts/bench_train.py --quick              # tiny model, smoke test
    .venv/bin/python scripts/bench_train.py --threads 1 --batch-sizes 4,8,16 --repeats 3

Not for: convergence or quality (the steps are too few); GPU throughput (CPU only).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lightning as L
import numpy as np
import peft
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from transformers import (
    DataCollatorForSeq2Seq,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    T5Config,
    T5ForConditionalGeneration,
    TrainerCallback,
    get_linear_schedule_with_warmup,
)

from kosum.data.aihub import AihubSource
from kosum.data.batching import LABEL_PAD, LengthGroupedBatchSampler, Seq2SeqCollator
from kosum.data.example import SummaryExample
from kosum.data.synthetic import generate_corpus
from kosum.data.tables import TableSource
from kosum.data.tokenized import TokenizedSplit
from kosum.generation import GenerationSettings
from kosum.io import write_json
from kosum.methods.factory import apply_method
from kosum.models.tokenizer_training import train_bpe_tokenizer
from kosum.training.fast_dropout import enable_fast_cpu_dropout
from kosum.training.module import SchedulerSettings, SummarizationModule

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "competition_sample.csv"
REFERENCE_BATCH = 4  # the seed's batch size; `--steps` counts steps of this size
VARIANTS = ("seed", "hf", "kosum", "kosum-fast", "kosum-nolog")
DEFAULT_VARIANTS = "seed,hf,kosum,kosum-fast"
LEARNING_RATE = 2e-4


@dataclass(frozen=True)
class Setup:
    """Model and data sizes (PERF_ANCHORS by default; `--quick` shrinks them)."""

    docs: int = 64
    vocab_size: int = 8000
    max_source_length: int = 1024
    max_target_length: int = 128
    d_model: int = 256
    d_ff: int = 1024
    num_layers: int = 4
    num_heads: int = 4
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1


QUICK = Setup(docs=8, vocab_size=2000, d_model=64, d_ff=128, num_layers=2)


# -- data ---------------------------------------------------------------------------------------
@dataclass
class Corpus:
    """The tokenised documents every variant trains on, and where they came from."""

    tokenizer: PreTrainedTokenizerBase
    examples: list[SummaryExample]
    sources: list[list[int]]
    targets: list[list[int]]
    origin: str

    def describe(self) -> str:
        src = np.array([len(s) for s in self.sources])
        tgt = np.array([len(t) for t in self.targets])
        return (
            f"{len(self.sources)} docs from {self.origin}; vocab {len(self.tokenizer)}; "
            f"source tokens mean {src.mean():.0f} p95 {np.percentile(src, 95):.0f} "
            f"max {src.max()}; target mean {tgt.mean():.0f} p95 {np.percentile(tgt, 95):.0f}"
        )


def load_examples(docs: int, tmp_dir: Path, synthetic: bool) -> tuple[list[SummaryExample], str]:
    """The first `docs` real news documents, else the first `docs` synthetic ones."""
    if SHARED_CSV.is_file() and not synthetic:
        return TableSource(SHARED_CSV).load().examples[:docs], str(SHARED_CSV)
    per_category = max(2, math.ceil(docs / 5))
    root = generate_corpus(tmp_dir / "synthetic", docs_per_category=per_category)
    examples = AihubSource(root).load().examples[:docs]
    return examples, "kosum's synthetic corpus (../shared absent)"


def build_corpus(setup: Setup, tmp_dir: Path, synthetic: bool) -> Corpus:
    examples, origin = load_examples(setup.docs, tmp_dir, synthetic)
    texts = [e.text for e in examples] + [e.summary for e in examples]
    tokenizer = train_bpe_tokenizer(texts, setup.vocab_size)
    # As SummarizationDataModule._tokenize does (prompt `none`: the text as it is).
    sources = tokenizer(
        [e.text for e in examples], max_length=setup.max_source_length, truncation=True
    )["input_ids"]
    targets = tokenizer(
        text_target=[e.summary for e in examples],
        max_length=setup.max_target_length,
        truncation=True,
    )["input_ids"]
    return Corpus(tokenizer, examples, sources, targets, origin)


# -- model --------------------------------------------------------------------------------------
def build_model(setup: Setup, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> nn.Module:
    """Random-init T5 + LoRA q,v through kosum's `apply_method`; identical for every variant."""
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=setup.d_model,
        d_kv=setup.d_model // setup.num_heads,
        d_ff=setup.d_ff,
        num_layers=setup.num_layers,
        num_decoder_layers=setup.num_layers,
        num_heads=setup.num_heads,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    lora = peft.LoraConfig(
        task_type="SEQ_2_SEQ_LM",
        r=setup.lora_r,
        lora_alpha=setup.lora_alpha,
        lora_dropout=setup.lora_dropout,
        target_modules=["q", "v"],
    )
    return apply_method(T5ForConditionalGeneration(config), lora)


class QuietSummarizationModule(SummarizationModule):
    """`SummarizationModule.training_step` without its three per-step `self.log` calls."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        ).loss


# -- timing -------------------------------------------------------------------------------------
@dataclass
class StepClock:
    """Wall and process-CPU clock at the end of each step, and each step's batch tokens."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    real: list[int] = field(default_factory=list)
    padded: list[int] = field(default_factory=list)

    def tick(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def count(self, batch: dict[str, torch.Tensor]) -> None:
        labels = batch["labels"]
        self.real.append(int(batch["attention_mask"].sum()) + int((labels != LABEL_PAD).sum()))
        self.padded.append(batch["input_ids"].numel() + labels.numel())


@dataclass
class Measurement:
    variant: str
    batch_size: int
    steps: int
    examples: int
    wall_s: float
    cpu_s: float
    real_tokens: int
    padded_tokens: int

    @property
    def real_per_s(self) -> float:
        return self.real_tokens / self.wall_s

    @property
    def padded_per_s(self) -> float:
        return self.padded_tokens / self.wall_s

    @property
    def real_per_cpu_s(self) -> float:
        return self.real_tokens / self.cpu_s


def window(clock: StepClock, variant: str, batch_size: int, warmup: int, steps: int) -> Measurement:
    """The timed steps warmup .. warmup+steps-1 (clock index i = end of step i)."""
    if len(clock.wall) < warmup + steps or len(clock.real) < warmup + steps:
        raise RuntimeError(
            f"{variant}: recorded {len(clock.wall)} step ends and {len(clock.real)} batches, "
            f"need {warmup + steps}"
        )
    first, last = warmup - 1, warmup + steps - 1
    return Measurement(
        variant=variant,
        batch_size=batch_size,
        steps=steps,
        examples=steps * batch_size,
        wall_s=clock.wall[last] - clock.wall[first],
        cpu_s=clock.cpu[last] - clock.cpu[first],
        real_tokens=sum(clock.real[warmup : last + 1]),
        padded_tokens=sum(clock.padded[warmup : last + 1]),
    )


# -- variants -----------------------------------------------------------------------------------
def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def run_seed(
    corpus: Corpus, setup: Setup, batch_size: int, warmup: int, steps: int, seed: int
) -> Measurement:
    """The seed's loop: pad everything to 1024/128 up front, shuffle, plain PyTorch."""
    pad = corpus.tokenizer.pad_token_id
    encoded = corpus.tokenizer(
        [e.text for e in corpus.examples],
        max_length=setup.max_source_length,
        truncation=True,
        padding="max_length",
        return_tensors="pt",
    )
    labels = corpus.tokenizer(
        text_target=[e.summary for e in corpus.examples],
        max_length=setup.max_target_length,
        truncation=True,
        padding="max_length",
        return_tensors="pt",
    )["input_ids"]
    labels[labels == pad] = LABEL_PAD
    dataset = TensorDataset(encoded["input_ids"], encoded["attention_mask"], labels)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    model = build_model(setup, corpus.tokenizer, seed)
    optimizer = torch.optim.AdamW(trainable(model), lr=LEARNING_RATE, weight_decay=0.0)
    total = warmup + steps
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, total)
    clock = StepClock()
    model.train()
    running_loss = 0.0
    while len(clock.wall) < total:
        for input_ids, attention_mask, target_ids in loader:
            batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": target_ids}
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            running_loss += loss.item()
            clock.count(batch)
            clock.tick()
            if len(clock.wall) == total:
                break
    return window(clock, "seed", batch_size, warmup, steps)


class _CountingCollator:
    """Wrap a collator and count each batch's tokens in the order the batches are made."""

    def __init__(self, collator: Callable[[list[dict[str, Any]]], Any], clock: StepClock) -> None:
        self.collator = collator
        self.clock = clock

    def __call__(self, rows: list[dict[str, Any]]) -> Any:
        batch = self.collator(rows)
        self.clock.count(batch)
        return batch


class _HFStepClock(TrainerCallback):
    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.clock.tick()


def run_hf(
    corpus: Corpus, setup: Setup, batch_size: int, warmup: int, steps: int, seed: int
) -> Measurement:
    """HF Seq2SeqTrainer + DataCollatorForSeq2Seq: dynamic padding, random order."""
    model = build_model(setup, corpus.tokenizer, seed)
    dataset = [
        {"input_ids": s, "attention_mask": [1] * len(s), "labels": t}
        for s, t in zip(corpus.sources, corpus.targets, strict=True)
    ]
    clock = StepClock()
    collator = _CountingCollator(
        DataCollatorForSeq2Seq(corpus.tokenizer, model=model, label_pad_token_id=LABEL_PAD), clock
    )
    with tempfile.TemporaryDirectory(prefix="kosum-bench-hf-") as out:
        args = Seq2SeqTrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            max_steps=warmup + steps,
            learning_rate=LEARNING_RATE,
            lr_scheduler_type="linear",
            warmup_steps=0,
            weight_decay=0.0,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            disable_tqdm=True,
            use_cpu=True,
            seed=seed,
        )
        trainer = Seq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=collator,
            callbacks=[_HFStepClock(clock)],
        )
        trainer.train()
    return window(clock, "hf", batch_size, warmup, steps)


class _LightningStepClock(L.Callback):
    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.clock.count(batch)
        self.clock.tick()


def _flat(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(flat int32 tokens, int64 offsets): TokenizedSplit's layout."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return np.fromiter((t for r in rows for t in r), dtype=np.int32), offsets


def run_kosum(
    corpus: Corpus,
    setup: Setup,
    batch_size: int,
    warmup: int,
    steps: int,
    seed: int,
    variant: str = "kosum",
) -> Measurement:
    """kosum's data path and SummarizationModule under Lightning (conf/trainer/cpu.yaml)."""
    split = TokenizedSplit(
        *_flat(corpus.sources),
        *_flat(corpus.targets),
        ids=[e.id for e in corpus.examples],
        references=[e.summary for e in corpus.examples],
        categories=[e.category for e in corpus.examples],
    )
    # As SummarizationDataModule.train_dataloader builds it.
    loader = DataLoader(
        split,
        batch_sampler=LengthGroupedBatchSampler(
            split.source_lengths(), batch_size, shuffle=True, seed=seed
        ),
        collate_fn=Seq2SeqCollator(corpus.tokenizer.pad_token_id),
        num_workers=0,
    )
    model = build_model(setup, corpus.tokenizer, seed)
    if variant == "kosum-fast":
        enable_fast_cpu_dropout(model)
    module_class = QuietSummarizationModule if variant == "kosum-nolog" else SummarizationModule
    module = module_class(
        model,
        corpus.tokenizer,
        optimizer=functools.partial(torch.optim.AdamW, lr=LEARNING_RATE, weight_decay=0.0),
        scheduler=SchedulerSettings(name="linear"),
        generation=GenerationSettings(),
    )
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="32-true",
        deterministic=True,
        max_steps=warmup + steps,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[_LightningStepClock(clock)],
    )
    try:
        trainer.fit(module, train_dataloaders=loader)
    finally:
        torch.use_deterministic_algorithms(False)  # Lightning turned it on process-wide
    return window(clock, variant, batch_size, warmup, steps)


def run_one(
    variant: str, corpus: Corpus, setup: Setup, batch_size: int, args: argparse.Namespace
) -> Measurement:
    steps = max(1, args.steps * REFERENCE_BATCH // batch_size)
    if variant == "seed":
        return run_seed(corpus, setup, batch_size, args.warmup, steps, args.seed)
    if variant == "hf":
        return run_hf(corpus, setup, batch_size, args.warmup, steps, args.seed)
    return run_kosum(corpus, setup, batch_size, args.warmup, steps, args.seed, variant)


# -- report -------------------------------------------------------------------------------------
def plan(variants: Sequence[str], batch_sizes: Sequence[int]) -> list[tuple[str, int]]:
    """(variant, batch size) runs of one round; the baselines run at batch 4 only."""
    runs: list[tuple[str, int]] = []
    for variant in variants:
        sizes = batch_sizes if variant.startswith("kosum") else [REFERENCE_BATCH]
        runs.extend((variant, b) for b in sizes)
    return runs


def summarise(
    rounds: list[dict[tuple[str, int], Measurement]], runs: list[tuple[str, int]]
) -> list[dict[str, Any]]:
    """Per (variant, batch): medians over rounds, and median same-round ratios to the baselines."""
    rows = []
    for key in runs:
        ms = [r[key] for r in rounds]
        row: dict[str, Any] = {
            "variant": key[0],
            "batch_size": key[1],
            "steps": ms[0].steps,
            "examples": ms[0].examples,
            "real_tok_s": statistics.median(m.real_per_s for m in ms),
            "padded_tok_s": statistics.median(m.padded_per_s for m in ms),
            "real_tok_cpu_s": statistics.median(m.real_per_cpu_s for m in ms),
            "pad_share": statistics.median(1 - m.real_tokens / m.padded_tokens for m in ms),
            "real_tok_s_rounds": [round(m.real_per_s, 1) for m in ms],
        }
        for base in ("seed", "hf"):
            base_key = (base, REFERENCE_BATCH)
            if base_key in rounds[0]:
                row[f"vs_{base}"] = statistics.median(
                    r[key].real_per_s / r[base_key].real_per_s for r in rounds
                )
                row[f"vs_{base}_cpu"] = statistics.median(
                    r[key].real_per_cpu_s / r[base_key].real_per_cpu_s for r in rounds
                )
        rows.append(row)
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    def ratio(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:.2f}×" if key in row else "n/a"

    lines = [
        "| variant | batch | timed steps | real tok/s | padded tok/s | real tok/CPU-s | padding "
        "| vs seed | vs hf | vs seed (CPU) | vs hf (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['batch_size']} | {row['steps']} "
            f"| {row['real_tok_s']:,.0f} | {row['padded_tok_s']:,.0f} "
            f"| {row['real_tok_cpu_s']:,.0f} | {row['pad_share']:.0%} "
            f"| {ratio(row, 'vs_seed')} | {ratio(row, 'vs_hf')} "
            f"| {ratio(row, 'vs_seed_cpu')} | {ratio(row, 'vs_hf_cpu')} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=None, help="documents (default 64; quick 8)")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps at batch 4 (default 16; quick 3)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 3; quick 1)")
    parser.add_argument("--batch-sizes", default=None, help="kosum batch sizes (default 4,8,16)")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"of {','.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny model, 8 docs, 3 steps")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic corpus")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "docs": 8 if quick else 64,
        "steps": 3 if quick else 16,
        "warmup": 1 if quick else 2,
        "repeats": 1 if quick else 3,
        "batch_sizes": "4" if quick else "4,8,16",
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1 or min(args.batch_sizes) < 1:
        parser.error("--warmup, --steps, --repeats and batch sizes must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = QUICK if args.quick else Setup()
    setup = Setup(**{**asdict(base), "docs": args.docs})
    with tempfile.TemporaryDirectory(prefix="kosum-bench-train-") as tmp:
        corpus = build_corpus(setup, Path(tmp), args.synthetic)
    params = sum(p.numel() for p in build_model(setup, corpus.tokenizer).parameters())
    print(f"data: {corpus.describe()}")
    print(f"model: {params / 1e6:.2f}M parameters; setup {asdict(setup)}")
    print(f"machine at start: {json.dumps(machine())}")
    runs = plan(args.variants, args.batch_sizes)
    rounds: list[dict[tuple[str, int], Measurement]] = []
    for round_index in range(args.repeats):
        shift = round_index % len(runs)
        result: dict[tuple[str, int], Measurement] = {}
        for variant, batch_size in runs[shift:] + runs[:shift]:
            measurement = run_one(variant, corpus, setup, batch_size, args)
            result[(variant, batch_size)] = measurement
            print(
                f"round {round_index + 1}/{args.repeats} {variant:11s} batch {batch_size:2d}: "
                f"{measurement.real_per_s:8,.0f} real tok/s, {measurement.padded_per_s:8,.0f} "
                f"padded tok/s, {measurement.real_per_cpu_s:8,.0f} real tok/CPU-s "
                f"({measurement.steps} steps, {measurement.wall_s:.1f} s); "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        rounds.append(result)
    rows = summarise(rounds, runs)
    print(f"\nmachine at end: {json.dumps(machine())}")
    print(f"median of {args.repeats} round(s); ratios: median of same-round ratios\n")
    print(render(rows))
    report = {"machine": machine(), "setup": asdict(setup), "args": vars(args), "rows": rows}
    print("RESULT_JSON " + json.dumps(report, default=str))
    if args.json:
        write_json(args.json, json.loads(json.dumps(report, default=str)))


if __name__ == "__main__":
    main()
