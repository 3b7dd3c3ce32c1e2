#!/usr/bin/env bash
# The GPU half of kosum's inference measurement (docs/inference.md, "On a GPU"), as one command
# for a session lent a GPU through the workplace's device tool. Two steps:
#
#   bash scripts/gpu_check.sh prepare     # here: wheels the GPU image lacks, into .whl/ (ignored)
#   bash scripts/gpu_check.sh run [all|train]   # there, with .whl carried; writes into $OUT
#
# The GPU image has torch but an older transformers and no Hydra/OmegaConf, so `prepare`
# downloads transformers, peft, hydra-core and omegaconf wheels (and builds antlr4's, which PyPI
# ships as source only) at the versions of this checkout's .venv. `run` installs them into
# /tmp/site, then:
#   1. scripts/check_fast_generation.py: kosum's fast path against transformers' on CUDA, fp32
#      and bf16 (never run on a GPU before);
#   2. scripts/bench_predict.py at pko-t5-large's shape: greedy and the seed preset against the
#      one-at-a-time loop (about 6-8 minutes on an H200; the synthetic corpus stands in for
#      ../shared, which does not travel);
#   3. training at pko-t5-large's shape in bf16 (model=pko_t5_large_shape, trainer=gpu): 300
#      steps each of LoRA and prefix_encdec, then scripts/train_mfu.py (tokens/s, MFU against
#      the GPU's bf16 peak, peak memory) and kosum-estimate's prediction for the same runs;
#   4. a 1-GPU trainer=ddp smoke run (Lightning DDP over NCCL, generation gathered).
# `run all` does 1-4 (more than 8 minutes); `run train` only 3-4 (about 4 minutes).
# Each step's log and JSON land in $OUT, so a step cut short still returns what it finished.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV_PYTHON=.venv/bin/python

prepare() {
    local versions
    versions=$("$VENV_PYTHON" -c "
import importlib.metadata as m
print(' '.join(f'{p}=={m.version(p)}' for p in
      ('transformers', 'peft', 'hydra-core', 'omegaconf', 'lightning',
       'lightning-utilities', 'torchmetrics')))")
    mkdir -p .whl
    "$VENV_PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $versions
    "$VENV_PYTHON" -m pip wheel --no-deps -w .whl \
        "antlr4-python3-runtime==$("$VENV_PYTHON" -c \
            "import importlib.metadata as m; print(m.version('antlr4-python3-runtime'))")"
    ls -la .whl
}


run() {
    : "${OUT:?set OUT to the folder for the results}"
    local steps="${1:-all}"
    export PYTHONUNBUFFERED=1
    if compgen -G ".whl/*.whl" > /dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    else
        export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers',
transformers.__version__)" | tee -a "$OUT/device.txt"
    if [ "$steps" = all ]; then
        python3 scripts/check_fast_generation.py --device cuda --json "$OUT/fast_generation.json" \
            2>&1 | tee "$OUT/fast_generation.log"
        python3 scripts/bench_predict.py --shape pko-t5-large --device cuda \
            --presets greedy,seed --batch-sizes 8,16,32 --ablation-batch-size 16 --texts 32 \
            --repeats 2 --json "$OUT/bench_large.json" 2>&1 | tee "$OUT/bench_large.log"
    fi
    train
}

# 300 bf16 steps per method at pko-t5-large's shape, batch 8 x 512/64 tokens; one validation
# batch per epoch, no test (throughput and memory).
TRAIN_ARGS=(model=pko_t5_large_shape trainer=gpu data=synthetic data.batch_size=8
    data.max_source_length=512 data.max_target_length=64 trainer.max_steps=300
    data.eval_batch_size=8 +trainer.limit_val_batches=1 generation.generate.max_length=16
    test=false logger=csv)
train() {
    for method in lora prefix_encdec; do
        timeout 150 python3 -m kosum.cli.train "${TRAIN_ARGS[@]}" "peft=$method" \
            "hydra.run.dir=$OUT/train_$method" 2>&1 | tail -20 | tee "$OUT/train_$method.log"
        python3 -m kosum.cli.estimate "${TRAIN_ARGS[@]}" "peft=$method" gpu_memory_gb=80 \
            "hydra.run.dir=$OUT/estimate_$method" 2>&1 | tail -9 | tee "$OUT/estimate_$method.log"
    done
    python3 scripts/train_mfu.py "$OUT"/train_lora "$OUT"/train_prefix_encdec \
        --json "$OUT/train_mfu.json" 2>&1 | tee "$OUT/train_mfu.log"
    timeout 120 python3 -m kosum.cli.train experiment=smoke trainer=ddp trainer.devices=1 \
        "hydra.run.dir=$OUT/ddp_smoke" 2>&1 | tail -20 | tee "$OUT/ddp_smoke.log"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run "${2:-all}" ;;
    *) echo "usage: bash scripts/gpu_check.sh prepare|run [all|train]" >&2; exit 2 ;;
esac
