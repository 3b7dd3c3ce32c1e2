"""The offline demo (`make demo`): the seed's story at toy scale, on synthetic data.

1. Stage 1 stands in for lcw99's AI-Hub fine-tune of pko-t5: a tiny random-init T5 is fully
   fine-tuned into a "base summarizer" on the ten synthetic categories' extractive summaries
   (experiment=demo_base).
2. Stage 2 adapts that base, as the seed adapted lcw99's model, to one-sentence abstractive
   summaries of fresh documents with a new prompt: LoRA, PEFT's prefix tuning and kosum's
   prefix_encdec at one matched trainable-parameter budget, plus the zero-shot base for
   reference, same data and schedule, three seeds (experiment=demo_adapt, a Hydra multirun,
   two jobs at a time).
3. `kosum-report` aggregates the runs into a table, paired significance tests against the
   zero-shot base and plots.

The corpus is kosum's own synthetic AI-Hub-format data, so the numbers show the framework
working end to end, not how well any method summarises real Korean. `--real` runs stage 2 on
the 350 real news documents in ../shared/data instead (kosum's machines and CI only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", *args]
    print(f"\n$ {' '.join(command[2:])}", flush=True)
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "demo")
    parser.add_argument("--seeds", default="1,2,3", help="seeds for stage 2 (comma-separated)")
    parser.add_argument(
        "--methods", default="none,lora,prefix,prefix_encdec", help="peft configs for stage 2"
    )
    parser.add_argument("--jobs", type=int, default=2, help="stage-2 jobs run at once")
    parser.add_argument(
        "--real",
        action="store_true",
        help="stage 2 on the real AI-Hub news samples in ../shared/data (when present)",
    )
    args = parser.parse_args(argv)
    out = args.out.resolve()
    env = {
        **os.environ,
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        "KOSUM_CACHE_DIR": os.environ.get("KOSUM_CACHE_DIR", str(out / "cache")),
    }
    started = time.perf_counter()

    base_dir = out / "base"
    print("== stage 1: train a tiny base summarizer on 10 synthetic categories (full fine-tuning)")
    _run("kosum.cli.train", "experiment=demo_base", f"hydra.run.dir={base_dir}", env=env)

    print("\n== stage 2: adapt it to one-sentence summaries of fresh documents, new prompt")
    stage2 = [
        "kosum.cli.train",
        "--multirun",
        "experiment=demo_adapt",
        f"model.name_or_path={base_dir / 'model'}",
        f"peft={args.methods}",
        f"seed={args.seeds}",
        "launcher=joblib",
        f"hydra.launcher.n_jobs={args.jobs}",
        f"hydra.sweep.dir={out / 'adapt'}",
    ]
    if args.real:
        shared = REPO_ROOT.parent / "shared" / "data" / "aihub582_sample"
        if not shared.is_dir():
            parser.error(f"--real needs the real samples at {shared}")
        stage2 += [
            "data=shared_sample",
            "data.use_official_split=false",  # the samples are all from the Validation split
            "data.max_source_length=512",
            "data.max_target_length=64",
        ]
    # Each job gets its share of the cores (joblib runs them as separate processes).
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    _run(*stage2, env={**env, "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", str(threads))})

    print("\n== report")
    report = ["kosum.cli.report", str(out / "adapt"), "--out", str(out / "report")]
    if "none" in args.methods.split(","):
        report += ["--reference", "none"]  # does adaptation beat the base it started from?
    _run(*report, env=env)
    base = json.loads((base_dir / "results.json").read_text(encoding="utf-8"))
    print(
        f"\nstage-1 base summarizer: test ROUGE-L {base['metrics']['rougeL']:.3f} "
        f"({base['trainable_params']:,} parameters)"
    )
    print((out / "report" / "report.md").read_text(encoding="utf-8").split("\n## ")[1])
    corpus = "the REAL AI-Hub news samples (stage 2)" if args.real else "SYNTHETIC data"
    print(f"\nDemo on {corpus} finished in {time.perf_counter() - started:.0f} s.")
    print(f"Report: {out / 'report' / 'report.md'} (plots beside it); runs: {out / 'adapt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
