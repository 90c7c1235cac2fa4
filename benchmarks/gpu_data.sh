#!/usr/bin/env bash
# Stage, here, the raw data that a GPU run of the paper profile reads into .gpu/data (ignored by git),
# within the device tool's 64 MiB on what travels (working tree ~12 MB + .gpu/whl ~25 MB + this; checked):
#
#   bash benchmarks/gpu_data.sh flowers17   # Table I's 8 species (640 of the 1,360 JPEGs, ~27 MB): notebook 04
#   bash benchmarks/gpu_data.sh cifar10     # the CIFAR-10 test JPEGs (~9.5 MB): notebooks 05, 09, 15, 16
#
# Stage one dataset per GPU run (both together pass the limit with the wheels); a dataset not
# staged is reported "missing" by --cells-only and its cells wait for a later run. Files are copied
# unchanged (same bytes, same decoded pixels) from DATA_SRC (default ../shared/data).
set -euo pipefail
SRC=${DATA_SRC:-../shared/data}
DEST=.gpu/data
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
rm -rf "$DEST"
mkdir -p "$DEST"
for name in "$@"; do
    case $name in
    flowers17)
        mkdir -p "$DEST/flowers17/jpg"
        # the species of Table I's tasks, from the library (coftad_lib.datasets.flowers17.TASKS)
        "$PY" -c "
from coftad_lib.datasets.flowers17 import TASKS, species_image_names
names = sorted({n for t in TASKS for s in t.split('/') for n in species_image_names(s)})
print('\n'.join(names))" > "$DEST/flowers17/jpg/files.txt"
        while read -r f; do cp "$SRC/flowers17/jpg/$f" "$DEST/flowers17/jpg/"; done < "$DEST/flowers17/jpg/files.txt"
        ;;
    cifar10)
        cp -r "$SRC/cifar10" "$DEST/cifar10"
        ;;
    *)
        echo "gpu_data.sh: unknown dataset '$name' (expected flowers17 or cifar10)" >&2
        exit 2
        ;;
    esac
done
du -sb "$DEST"/* 2>/dev/null || true
# what a device run carries: the working tree git sees (tracked + untracked, not ignored) and .gpu
"$PY" - <<'PYEOF'
import os, subprocess, sys
tree = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                      capture_output=True, check=True).stdout.decode().split("\0")
size = lambda paths: sum(os.path.getsize(p) for p in paths if p and os.path.isfile(p))
gpu = [os.path.join(d, f) for d, _, fs in os.walk(".gpu") for f in fs]
t, g = size(tree), size(gpu)
print(f"travels: working tree {t / 2**20:.1f} MiB + .gpu {g / 2**20:.1f} MiB = {(t + g) / 2**20:.1f} MiB (limit 64 MiB)")
sys.exit(0 if t + g <= 64 * 2**20 else "gpu_data.sh: over the device tool's 64 MiB; stage less")
PYEOF
