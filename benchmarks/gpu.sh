#!/usr/bin/env bash
# The GPU check, on a bare CUDA machine without network: the `cuda` tests, then
# benchmarks/gpu.py (build, train, evaluate and predict on the GPU beside the CPU), one table,
# then benchmarks/locate.py's speed part (the correlator on the GPU: correlation only and
# end to end, beside the CPU and the scipy reference), then benchmarks/train_step.py (the
# training step's settings beside leakhunter's).
#
#   bash benchmarks/gpu.sh WHEEL_DIR [OUT_DIR [gpu.py options...]]
#
# OUT_DIR (default gpu-out) receives the logs and figures only; the generated recordings and
# datasets go to a temporary folder.
#
# The machine's python3 must hold torch (with CUDA), numpy, h5py, scikit-learn, matplotlib,
# onnx, onnxruntime, tqdm and pytest. WHEEL_DIR holds what it lacks as wheels for its Python
# (soundfile, cffi, soxr): they are unpacked into a private folder, nothing is installed
# system-wide. The project runs from src/ through PYTHONPATH; no pip install of leakhunter.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${1:?usage: bash benchmarks/gpu.sh WHEEL_DIR [OUT_DIR]}
out=${2:-gpu-out}
site=$(mktemp -d "${TMPDIR:-/tmp}/leakhunter-site.XXXXXX")
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
    "$wheels"/*.whl
export PYTHONPATH="$PWD/src:$site" PYTHONUNBUFFERED=1
python3 - <<'PY'
import importlib, sys
missing = [m for m in ("torch", "numpy", "h5py", "sklearn", "matplotlib", "onnx",
                       "onnxruntime", "tqdm", "pytest", "soundfile", "soxr")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu.sh: missing Python packages: {', '.join(missing)} (bring them as wheels)")
import torch
if not torch.cuda.is_available():
    sys.exit("gpu.sh: torch sees no CUDA device")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
PY
start=$(date +%s)
if ! python3 -m pytest -q -p no:cacheprovider -m cuda tests/cli/test_cli.py \
        tests/dataset/test_build.py tests/learn/test_learn.py tests/locate/test_locate.py \
        2>&1 | tee "$out/cuda_tests.txt"; then
    echo "gpu.sh: a cuda test FAILED (see $out/cuda_tests.txt); measuring anyway"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/leakhunter-gpu.XXXXXX")
python3 benchmarks/gpu.py --out "$work" --figures "$out/gpu_figures.json" "${@:3}" 2>&1 \
    | grep --line-buffered -v 'it/s]$' | tee "$out/gpu_figures.txt"
python3 benchmarks/locate.py --skip accuracy --device cuda --speed-pairs 64 --repeats 3 \
    --json "$out/locate_speed.json" 2>&1 | tee "$out/locate_speed.txt"
python3 benchmarks/train_step.py --device cuda --batch-sizes 4096,8192,16384,32768 \
    --json "$out/train_step.json" 2>&1 | tee "$out/train_step.txt"
python3 benchmarks/train_step.py --device cuda --batch-sizes 4096,16384 --compile \
    --json "$out/train_step_compiled.json" 2>&1 | grep -E 'device|compiled|graphs' \
    | tee "$out/train_step_compiled.txt" || true
echo "gpu.sh: done in $(( $(date +%s) - start )) s"
