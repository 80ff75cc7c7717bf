#!/usr/bin/env bash
# The CPU runs behind docs/benchmarks.md: tables 1-5, one after the other.
#   tools/analysis_tools/run_benchmarks.sh [OUT_DIR]    (default work_dirs/bench)
# CORE=1 pins the runs to that core (taskset), as for the published numbers; empty: no pin.
# PYTHON picks the interpreter (default: python). Afterwards, the markdown tables:
#   python tools/analysis_tools/benchmark_tables.py attention OUT_DIR/a_dense.json
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-work_dirs/bench}
CORE=${CORE-1}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
PIN=()
if [ -n "$CORE" ]; then PIN=(taskset -c "$CORE"); fi
bench() { "${PIN[@]}" "$PYTHON" tools/analysis_tools/benchmark.py --threads 1 "$@"; }
set -x
ALL="scopevit-xt scopevit-t scopevit-s scalablevit-s scalablevit-b scalablevit-l"
# 1. dense inference, both attention modes
bench --model scopevit-xt scopevit-t scopevit-s scalablevit-s --sizes 800x1344 \
    --batch-sizes 1 --modes infer --warmup 1 --repeat 3 --json "$OUT/a_dense.json"
# 2. classification sizes, inference, both attention modes
bench --model $ALL --sizes 224 256 --batch-sizes 8 --modes infer --warmup 2 --repeat 5 \
    --json "$OUT/b_cls_infer.json"
# 5. classification size, training step, both attention modes
bench --model $ALL --sizes 224 --batch-sizes 8 --modes train --warmup 1 --repeat 3 \
    --json "$OUT/e_cls_train.json"
# 3. gradient checkpointing, training step at Mask R-CNN size
bench --model scopevit-t scalablevit-s --sizes 800x1344 --batch-sizes 1 --modes train \
    --attn fused --with-cp both --warmup 1 --repeat 2 --json "$OUT/c_with_cp.json"
# 4. comparison with OpenMMLab backbones of similar FLOPs
bench --model scopevit-t scopevit-s scalablevit-s mmpretrain:SwinTransformer:tiny \
    mmpretrain:PCPVT:small mmpretrain:SVT:small pvtv2-b2 mmpretrain:ConvNeXt:tiny \
    mmpretrain:ResNet:50 --attn fused --sizes 224 --batch-sizes 8 --modes infer train \
    --warmup 1 --repeat 3 --flops --json "$OUT/d_compare.json"
