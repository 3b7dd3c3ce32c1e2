#!/usr/bin/env bash
# The GPU half of kosum's inference measurement (docs/inference.md, "On a GPU"), as one command
# for a session lent a GPU through the workplace's device tool. Two steps:
#
#   bash scripts/gpu_check.sh prepare     # here: wheels the GPU image lacks, into .whl/ (ignored)
#   bash scripts/gpu_check.sh run         # there, with .whl carried; writes into $OUT
#
# The GPU image has torch but an older transformers and no Hydra/OmegaConf, so `prepare`
# downloads transformers, peft, hydra-core and omegaconf wheels (and builds antlr4's, which PyPI
# ships as source only) at the versions of this checkout's .venv. `run` installs them into
# /tmp/site, then:
#   1. scripts/check_fast_generation.py: kosum's fast path against transformers' on CUDA, fp32
#      and bf16 (never run on a GPU before);
#   2. scripts/bench_predict.py at pko-t5-large's shape: greedy and the seed preset against the
#      one-at-a-time loop (about 6-8 minutes on an H200; the synthetic corpus stands in for
#      ../shared, which does not travel).
# Each step's log and JSON land in $OUT, so a step cut short still returns what it finished.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV_PYTHON=.venv/bin/python

prepare() {
    local versions
    versions=$("$VENV_PYTHON" -c "
import importlib.metadata as m
print(' '.join(f'{p}=={m.version(p)}' for p in
      ('transformers', 'peft', 'hydra-core', 'omegaconf')))")
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
    python3 scripts/check_fast_generation.py --device cuda --json "$OUT/fast_generation.json" \
        2>&1 | tee "$OUT/fast_generation.log"
    python3 scripts/bench_predict.py --shape pko-t5-large --device cuda --presets greedy,seed \
        --batch-sizes 8,16,32 --ablation-batch-size 16 --texts 32 --repeats 2 \
        --json "$OUT/bench_large.json" 2>&1 | tee "$OUT/bench_large.log"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash scripts/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
