#!/usr/bin/env bash
# The one GPU check (issue #16): install what it needs, then `rtseg-bench --gpu-check`, all in at most 9 minutes.
# Usage: scripts/gpu_check.sh OUT_DIR [--quick]     (--quick: the CPU rehearsal, small sizes)
# Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md; parts that cannot run are reported as skipped.
set -u
start=$SECONDS
out=${1:-gpu_check}
shift || true
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

# TensorRT, matching torch's CUDA major version, without replacing torch or its CUDA libraries: every
# installed torch*/nvidia-*/cuda-* distribution is pinned as a constraint. Wheels in .whl/ (carried to a
# machine without network) are preferred; a failed install only makes the TensorRT rows "skipped".
if ! $python -c "import tensorrt" 2>/dev/null && $python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    constraints=$(mktemp)
    $python - >"$constraints" <<'PY'
import importlib.metadata as metadata
for dist in metadata.distributions():
    name = dist.metadata["Name"] or ""
    if name.lower().startswith(("torch", "nvidia-", "cuda-")):
        print(f"{name}=={dist.version}")
PY
    cuda_major=$($python -c "import torch; print(torch.version.cuda.split('.')[0])")
    sources=(--retries 0 --timeout 15)
    [ -d .whl ] && sources=(--no-index --find-links .whl)
    timeout 180 $python -m pip install -q "${sources[@]}" -c "$constraints" "tensorrt-cu${cuda_major}" \
        || echo "[gpu-check] TensorRT could not be installed; its rows will be reported as skipped"
    $python -c "import torch; assert torch.cuda.is_available(); print('[gpu-check] torch', torch.__version__, 'still sees the GPU')"
fi

budget=$((530 - (SECONDS - start)))
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
    $python -m rtseg_ros.bench.cli --gpu-check --out "$out" --budget "$budget" "$@"
