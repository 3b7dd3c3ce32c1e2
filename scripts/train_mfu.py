"""Model FLOPs utilisation of finished kosum-train runs, from their results.json.

    python scripts/train_mfu.py outputs/gpu/lora outputs/gpu/prefix_encdec [--peak-tflops 989]

FLOPs per trained token follow the usual count (Kaplan et al. 2020; Chinchilla's 6N): a forward
pass costs 2 FLOPs per parameter per token, the backward pass 2 more for the activations'
gradients and, for the weights that train, 2 more for theirs. So a method that freezes the base
(LoRA, prefix tuning) costs about 4N per token and full fine-tuning 6N. N is the model's
parameters without the embedding table (a lookup, not a matmul). For an encoder-decoder this
treats every token as passing the whole model, an overestimate of a few tens of percent when the
source is much longer than the target: read the MFU as an upper bound. The peak is the GPU's
dense bf16 rate (--peak-tflops, or from the device's name).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

# Dense bf16 tensor-core peaks, in TFLOP/s (vendor data sheets, SXM parts).
BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def peak_tflops(given: float | None) -> float:
    if given:
        return given
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    for key, value in BF16_PEAK_TFLOPS.items():
        if key in name:
            return value
    raise SystemExit(f"no known bf16 peak for {name or 'this CPU'}: give --peak-tflops")


def mfu(record: dict, peak: float) -> dict:
    config = record["config"]
    model = config["model"]
    shape = model.get("init_config") or {}  # a pretrained model: pko-t5-large's (MODELS.md)
    vocab = shape.get("vocab_size") or model.get("tokenizer_vocab_size") or 50358
    d_model = shape.get("d_model") or 1024
    matmul_params = record["total_params"] - vocab * d_model
    full = record["trainable_params"] >= 0.5 * record["total_params"]
    flops_per_token = (6 if full else 4) * matmul_params
    achieved = record["tokens_per_s"] * flops_per_token / 1e12
    return {
        "method": record["method"],
        "tokens_per_s": round(record["tokens_per_s"], 1),
        "time_per_step_s": round(record["time_per_step_s"], 4),
        "peak_memory_mb": round(record["peak_memory_mb"] or 0.0),
        "tflops": round(achieved, 1),
        "mfu": round(achieved / peak, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    peak = peak_tflops(args.peak_tflops)
    rows = [
        mfu(json.loads((run / "results.json").read_text(encoding="utf-8")), peak)
        for run in args.runs
    ]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps({"peak_tflops": peak, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
