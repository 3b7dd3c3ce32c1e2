"""kosum's fast generation path against transformers' own, on one device: same summaries?

For a device the test suite never sees (CI has no GPU): builds the benchmark's tiny random T5
(and the same model with a LoRA adapter), then summarises the same texts with
`generate_summaries` twice per decoding, with every speed-up (kosum's T5 path, the kept
cross-attention cache; Gumbel beam sampling off, so both draw from `torch.multinomial`) and with
none, at the same seed; prints how many summaries agree, per model, decoding and precision
(fp32; bf16 autocast where the device has it, which is what `generate_summaries` uses on CUDA).
On CPU every text agrees (tests/test_bench_predict.py); on a GPU the two paths run other
kernels, so agreement is a measurement, not a guarantee: a few differing sampled summaries
under bf16 are rounding, a systematic difference is a bug.

    python scripts/check_fast_generation.py --device cuda --json fast_generation.json
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, TaskType, get_peft_model

from bench_predict import build_model  # this folder: on sys.path when run as a script
from kosum.data.aihub import AihubSource
from kosum.data.synthetic import generate_corpus
from kosum.generation import GenerationSettings
from kosum.inference.batched import generate_summaries
from kosum.io import write_json

DECODINGS: dict[str, dict[str, Any]] = {
    "greedy": {"num_beams": 1, "do_sample": False},
    "beam4": {"num_beams": 4, "do_sample": False, "early_stopping": True},
    "beam8_sample": {"num_beams": 8, "do_sample": True, "min_length": 10},
}


def build_models(texts: list[str], device: str) -> tuple[dict[str, torch.nn.Module], Any]:
    """bench_predict's tiny model (kosum's tiny_t5, random init), bare and with LoRA."""
    base, tokenizer = build_model(texts, "tiny")
    lora = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=8, lora_alpha=32, target_modules=["q", "v"]),
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # LoRA's B starts at zero: make the adapter matter
        for parameter in lora.parameters():
            if parameter.requires_grad:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return {"t5": base.to(device), "t5+lora": lora.eval().to(device)}, tokenizer


def agreement(
    model: torch.nn.Module, tokenizer: Any, texts: list[str], decoding: dict[str, Any], bf16: bool
) -> int:
    settings = GenerationSettings(generate={**decoding, "max_length": 40, "suppress_tokens": [0]})
    outputs = []
    for fast in (True, False):
        torch.manual_seed(0)
        outputs.append(
            generate_summaries(
                model,
                tokenizer,
                texts,
                settings,
                batch_size=8,
                max_source_length=512,
                fast_t5=fast,
                keep_cross_attention=fast,
                gumbel_sampling=False,
                bf16_autocast=bf16,
            ).summaries
        )
    return sum(a == b for a, b in zip(*outputs, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--texts", type=int, default=24)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    corpus = generate_corpus(Path(".cache/check_fast_generation"), docs_per_category=3)
    texts = [e.text for e in AihubSource(corpus).load().examples][: args.texts]
    models, tokenizer = build_models(texts, args.device)
    device = torch.device(args.device)
    precisions = ["fp32"]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        precisions.append("bf16")
    rows = []
    for precision in precisions:
        for model_name, model in models.items():
            for name, decoding in DECODINGS.items():
                same = agreement(model, tokenizer, texts, decoding, precision == "bf16")
                rows.append(
                    {
                        "model": model_name,
                        "decoding": name,
                        "precision": precision,
                        "same": same,
                        "texts": len(texts),
                    }
                )
                print(f"{precision} {model_name} {name}: {same}/{len(texts)} equal", flush=True)
    if args.json:
        write_json(args.json, {"device": str(device), "torch": torch.__version__, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
