#!/usr/bin/env bash
# The one GPU check (issues #16, #22): install what it needs from PyPI, then `rtseg-bench --gpu-check`, all in
# at most 9 minutes, on a bare box that has python3, pip and (usually) torch.
# Usage: scripts/gpu_check.sh [OUT_DIR] [--quick] [rtseg-bench options]
#   OUT_DIR: where the results go; default $OUT when it is set. A relative folder is the caller's, not the repo's.
#   --quick: the CPU rehearsal (small sizes).
# Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md (and install.log, install.tsv); a part that cannot be
# installed or run is reported as skipped, with its reason, in one line.
set -u
start=$SECONDS
out=${OUT:-}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    out=$1
    shift
fi
if [ -z "$out" ]; then
    echo "[gpu-check] no output folder: run scripts/gpu_check.sh OUT_DIR [--quick] (or set \$OUT)" >&2
    exit 2
fi
bench_args=("$@")  # the rest goes to rtseg-bench
mkdir -p "$out" && out=$(cd "$out" && pwd) || { echo "[gpu-check] cannot create the output folder $out" >&2; exit 2; }
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
log=$out/install.log      # everything pip says; the console gets one line per part
parts=$out/install.tsv    # part <TAB> ok|skipped|failed <TAB> note: the bench copies it into its report
: >"$log"
: >"$parts"

say() {  # say PART STATUS NOTE: one line on the console and one row for the report
    echo "[gpu-check] install $1: $2${3:+ ($3)}"
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$parts"
}
importable() { "$python" -c "import $1" >>"$log" 2>&1; }
version_of() { "$python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null; }

if ! "$python" -m pip --version >>"$log" 2>&1; then
    echo "[gpu-check] $python has no pip: install python3-pip (or set PYTHON=/path/to/python)" >&2
    exit 1
fi

# Never replace torch or its CUDA libraries: every installed torch*/nvidia-*/cuda-* distribution is pinned for
# every install below (torchvision, for one, then resolves to the build matching this torch).
constraints=$out/constraints.txt
"$python" - >"$constraints" <<'PY'
import importlib.metadata as metadata
for dist in metadata.distributions():
    name = dist.metadata["Name"] or ""
    if name.lower().startswith(("torch", "nvidia-", "cuda-")):
        print(f"{name}=={dist.version}")
PY
pip_install() { timeout 300 "$python" -m pip install --disable-pip-version-check -c "$constraints" "$@" >>"$log" 2>&1; }

# 1. The package and everything in its install_requires (cityscapesscripts, rosbags, ...): the bench cannot
#    import without them. Not optional: without them nothing can be measured.
if pip_install -e . && importable rtseg_ros.bench.gpu_check; then
    say requirements ok "pip install -e . (install_requires)"
else
    say requirements failed "pip install -e . failed; see $log"
    echo "[gpu-check] the package's requirements could not be installed, so nothing can be measured" >&2
    exit 1
fi
cuda=$("$python" -c "import torch; print(int(torch.cuda.is_available()))" 2>>"$log")

# 2. Optional parts: each either imports afterwards or is reported as skipped with its reason.
#    pytest: the cuda_tests part; onnx/onnxscript: the ONNX export every ONNX-based engine runs.
for part in "pytest pytest" "onnx onnx onnxscript"; do
    read -r module dists <<<"$part"
    if importable "$module"; then
        say "$module" ok "already installed, $(version_of "$module")"
    elif pip_install $dists && importable "$module"; then
        say "$module" ok "pip install $dists"
    else
        say "$module" skipped "pip install $dists failed; see $log"
    fi
done

# ONNX Runtime: its CUDA build on a GPU (the CPU build would only give CPU rows), the CPU build otherwise. The
# two packages hold the same module, so an existing one is kept.
ort_dist=onnxruntime
[ "$cuda" = 1 ] && ort_dist=onnxruntime-gpu
if importable onnxruntime; then
    ort_note="already installed"
elif pip_install "$ort_dist" && importable onnxruntime; then
    ort_note="pip install $ort_dist"
fi
if [ -z "${ort_note:-}" ]; then
    say onnxruntime skipped "pip install $ort_dist failed; see $log"
elif [ "$cuda" = 1 ]; then
    # The CUDA provider is listed whenever it is built in, even where its CUDA libraries do not load (a CUDA 12
    # build beside a CUDA 13 torch); only a session shows which provider it really got.
    granted=$("$python" - 2>>"$log" <<'PY'
import onnx, onnxruntime
from onnx import TensorProto, helper
value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [value],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)  # any ORT >= 1.10
session = onnxruntime.InferenceSession(model.SerializeToString(),
                                       providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
print(onnxruntime.__version__, session.get_providers()[0])
PY
)
    case $granted in
        *CUDAExecutionProvider) say onnxruntime ok "$ort_note; $granted" ;;
        *) say onnxruntime skipped "$ort_note, but its CUDA provider does not start here (${granted:-no session}; see $log)" ;;
    esac
else
    say onnxruntime ok "$ort_note, $("$python" -c 'import onnxruntime; print(onnxruntime.__version__)')"
fi

# TensorRT, matching torch's CUDA major version. On PyPI `tensorrt-cuNN` is an sdist whose tensorrt_cuNN_libs
# downloads the real wheel from pypi.nvidia.com (and 0.0.0a0 an empty placeholder wheel): asking for wheels of
# version >= 10 fails at once where only PyPI is reachable, instead of hanging in a build. Wheels in .whl/
# (fetched where pypi.nvidia.com is reachable, README "GPU check") are used instead when present.
if [ "$cuda" != 1 ]; then
    say tensorrt skipped "no CUDA GPU; TensorRT runs on CUDA only"
elif importable tensorrt; then
    say tensorrt ok "already installed, $("$python" -c 'import tensorrt; print(tensorrt.__version__)')"
else
    cuda_major=$("$python" -c "import torch; print(torch.version.cuda.split('.')[0])")
    sources=(--only-binary :all: --retries 0 --timeout 15)
    [ -d .whl ] && sources=(--no-index --find-links .whl)
    if pip_install "${sources[@]}" "tensorrt-cu${cuda_major}>=10" && importable tensorrt; then
        say tensorrt ok "tensorrt-cu${cuda_major} $("$python" -c 'import tensorrt; print(tensorrt.__version__)')"
    elif [ ! -d .whl ] && tail -n 5 "$log" | grep -q "No matching distribution found for tensorrt-cu"; then
        say tensorrt skipped "PyPI has tensorrt-cu${cuda_major} only as an sdist that downloads from pypi.nvidia.com, not reachable here; put its wheels in .whl/ (README, GPU check)"
    else
        say tensorrt skipped "pip install tensorrt-cu${cuda_major} failed; see $log"
    fi
    "$python" -c "import torch; assert torch.cuda.is_available()" 2>>"$log" \
        || echo "[gpu-check] torch no longer sees the GPU after the installs; see $log" >&2
fi

budget=$((530 - (SECONDS - start)))
echo "[gpu-check] installs took $((SECONDS - start)) s; $budget s left for the measurements; results in $out"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
    "$python" -m rtseg_ros.bench.cli --gpu-check --out "$out" --budget "$budget" "${bench_args[@]}"
