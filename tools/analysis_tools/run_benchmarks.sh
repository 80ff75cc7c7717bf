#!/usr/bin/env bash
# The CPU runs behind docs/benchmarks.md: tables 1-8, one after the other.
#   tools/analysis_tools/run_benchmarks.sh [OUT_DIR]    (default work_dirs/bench)
# CORE=1 pins the runs to that core (taskset), as for the published numbers; empty: no pin.
# Table 6 (against the released code) runs only when MMSCOPE_OFFICIAL_CODE names a folder
# with the released scopevit.py / scalablevit.py (MMSCOPE_OFFICIAL_DEPS: timm + einops).
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
profile() {
    "${PIN[@]}" "$PYTHON" tools/analysis_tools/attention_profile.py --threads 1 --size 224 "$@"
}
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
# 6. against the released code (needs MMSCOPE_OFFICIAL_CODE)
if [ -n "${MMSCOPE_OFFICIAL_CODE:-}" ]; then
    bench --vs-official --attn fused --model scalablevit-s scalablevit-b scalablevit-l \
        --sizes 224 --batch-sizes 8 --modes infer train --warmup 1 --repeat 3 \
        --paired-repeat 8 --json "$OUT/f_official_scalablevit.json"
    # the released ScopeViT needs stage maps that are multiples of its 8x8 grid: 256, 512
    bench --vs-official --attn fused --model scopevit-xt scopevit-t scopevit-s --sizes 256 \
        --batch-sizes 8 --modes infer train --warmup 1 --repeat 3 --paired-repeat 8 \
        --json "$OUT/f_official_scopevit.json"
    bench --vs-official --attn fused --model scopevit-xt scopevit-t scopevit-s --sizes 512 \
        --batch-sizes 1 --modes infer train --out-indices 0 1 2 3 --warmup 1 --repeat 3 \
        --paired-repeat 6 --json "$OUT/f_official_dense.json"
else
    echo "table 6 skipped: set MMSCOPE_OFFICIAL_CODE (see docs/benchmarks.md)" >&2
fi
# 7. batch-1 inference at 224 (latency), both attention modes
bench --model $ALL --sizes 224 --batch-sizes 1 --modes infer --warmup 3 --repeat 10 \
    --paired-repeat 20 --json "$OUT/h_b1_infer.json"
# 8. every attention call, both paths, and attention's share of the step
for m in scalablevit-s scalablevit-b scalablevit-l scopevit-t; do
    for mode in infer train; do
        profile --model $m --batch 8 --mode $mode --repeat 15 \
            --json "$OUT/g_profile_${m}_${mode}.json"
    done
done
for m in scalablevit-s scopevit-t; do
    profile --model $m --batch 1 --mode infer --repeat 21 --step-repeat 7 \
        --json "$OUT/g_profile_${m}_infer_b1.json"
done
