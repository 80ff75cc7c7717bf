#!/usr/bin/env bash
# The GPU check, for the first GPU machine: tools/analysis_tools/gpu_check.sh [OUT_DIR]
# Runs tools/analysis_tools/gpu_check.py on CUDA (under 8 minutes on one GPU), keeps its
# log and JSON in OUT_DIR (default work_dirs/gpu_check), and prints the summary to paste
# into docs/benchmarks.md ("GPU check"). PYTHON selects the interpreter (default: python).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$here/work_dirs/gpu_check}"
mkdir -p "$out"
cd "$here"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt" || true
set -o pipefail
PYTHONUNBUFFERED=1 "${PYTHON:-python}" tools/analysis_tools/gpu_check.py --device cuda \
    --out-dir "$out" 2>&1 | tee "$out/gpu_check.log"
