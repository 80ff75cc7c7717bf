#!/usr/bin/env bash
# Set up everything mmscope needs, idempotently, and say what is done.
#
# Environment (all optional; the Makefile passes its variables through):
#   VENV=.venv            virtual environment to create/use (ignored when PYTHON is set)
#   PYTHON=/path/python   use this existing interpreter/env instead of creating VENV
#   BASE_PYTHON=python3.11  interpreter that creates VENV
#   TORCH_VERSION=2.12.1 TORCHVISION_VERSION=0.27.1   the pinned pair (pick your CUDA build
#                         of the same pair with TORCH_INDEX_URL=... on GPU machines)
#   PIP_EXTRA="--find-links ../shared/wheels"   extra pip arguments (e.g. a wheel cache)
#   OFFICIAL_DEPS=DIR     also install what the released model files import (timm, einops;
#                         requirements/official.txt) into DIR, outside the environment, for
#                         the live comparison with the released code (MMSCOPE_OFFICIAL_DEPS)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

VENV="${VENV:-.venv}"
BASE_PYTHON="${BASE_PYTHON:-python3.11}"
TORCH_VERSION="${TORCH_VERSION:-2.12.1}"
TORCHVISION_VERSION="${TORCHVISION_VERSION:-0.27.1}"
MMCV_VERSION="${MMCV_VERSION:-2.1.0}"
PIP_EXTRA="${PIP_EXTRA:-}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-}"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

if [ -z "${PYTHON:-}" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    command -v "$BASE_PYTHON" >/dev/null || die "$BASE_PYTHON not found; set BASE_PYTHON or PYTHON"
    say "creating virtual environment $VENV with $BASE_PYTHON"
    "$BASE_PYTHON" -m venv "$VENV"
  else
    say "virtual environment $VENV exists"
  fi
  PYTHON="$VENV/bin/python"
fi
say "python: $PYTHON ($("$PYTHON" --version 2>&1))"

# Every pip call carries the constraints, so nothing can resolve an unpinned torch.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
sed -e "s/^torch==.*/torch==$TORCH_VERSION/" \
    -e "s/^torchvision==.*/torchvision==$TORCHVISION_VERSION/" \
    -e "s/^mmcv==.*/mmcv==$MMCV_VERSION/" requirements/constraints.txt > "$constraints"
# shellcheck disable=SC2086
pip_install() { "$PYTHON" -m pip install --disable-pip-version-check -c "$constraints" $PIP_EXTRA "$@"; }

have() { "$PYTHON" - "$@" >/dev/null 2>&1; }

# 1. build tools (setuptools<80 keeps pkg_resources for mmcv's setup.py and mmengine)
if have <<'EOF'
import setuptools, wheel, ninja, numpy
assert int(setuptools.__version__.split('.')[0]) < 80
assert int(numpy.__version__.split('.')[0]) < 2
EOF
then say "build tools present (setuptools<80, wheel, ninja, numpy<2)"
else say "installing build tools"; pip_install -r requirements/build.txt; fi

# 2. torch + torchvision, together, pinned
if have "$TORCH_VERSION" "$TORCHVISION_VERSION" <<'EOF'
import sys, torch, torchvision
assert torch.__version__.split('+')[0] == sys.argv[1], torch.__version__
assert torchvision.__version__.split('+')[0] == sys.argv[2], torchvision.__version__
EOF
then say "torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION present"
else
  say "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION (large download)"
  if [ -n "$TORCH_INDEX_URL" ]; then
    pip_install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  else
    pip_install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  fi
fi

# 3. mmengine, then mmcv from source with its C++ ops against the installed torch
check_ops() { "$PYTHON" "$here/tools/check_mmcv_ops.py"; }
if have "$MMCV_VERSION" <<'EOF'
import sys, mmcv
assert mmcv.__version__ == sys.argv[1]
EOF
then
  if check_ops >/dev/null 2>&1; then say "mmcv $MMCV_VERSION with working C++ ops present"
  else
    say "mmcv $MMCV_VERSION is installed but its ops do not load; reinstalling"
    "$PYTHON" -m pip uninstall -y mmcv
  fi
fi
if ! have "$MMCV_VERSION" <<'EOF'
import sys, mmcv
assert mmcv.__version__ == sys.argv[1]
EOF
then
  pip_install "mmengine==0.10.7"
  say "installing mmcv==$MMCV_VERSION with C++ ops (builds from source: ~13 min on 2 cores" \
      "unless PIP_EXTRA points at a prebuilt wheel for this torch)"
  # --no-cache-dir: pip's wheel cache is keyed by the sdist, not by torch, and could hand
  # back a wheel built against another torch. --no-build-isolation: build against ours.
  MMCV_WITH_OPS=1 FORCE_CUDA="${FORCE_CUDA:-0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    pip_install --no-build-isolation --no-cache-dir "mmcv==$MMCV_VERSION"
fi
say "verifying mmcv.ops against the installed torch"
check_ops || die "mmcv.ops does not work (see above). Remove it (pip uninstall mmcv) and rerun."

# 4. the OpenMMLab libraries and the rest, pinned
if have <<'EOF'
import importlib.metadata as m
want = {'mmengine': '0.10.7', 'mmdet': '3.3.0', 'mmsegmentation': '1.2.2',
        'mmpretrain': '1.2.0'}
for k, v in want.items():
    assert m.version(k) == v, k
import pycocotools, ftfy, regex, pytest, mmscope  # noqa
EOF
then say "mmengine/mmdet/mmseg/mmpretrain, extras and mmscope present"
else
  say "installing mmdet, mmsegmentation, mmpretrain, pycocotools, ftfy, regex, pytest"
  pip_install -r requirements/runtime.txt -r requirements/tests.txt
  say "installing mmscope (editable)"
  pip_install --no-deps --no-build-isolation -e .
fi

# 5. mmpose (2D pose) without its unbuildable chumpy requirement, and its real runtime needs
if have <<'EOF'
import importlib.metadata as m
assert m.version('mmpose') == '1.3.2'
import json_tricks, munkres, xtcocotools._mask, mmpose.apis  # noqa
EOF
then say "mmpose 1.3.2 (2D) present"
else
  say "installing mmpose==1.3.2 (--no-deps: its chumpy requirement does not build)" \
      "+ json_tricks, munkres, xtcocotools"
  pose_reqs="$(mktemp)"
  grep -v '^mmpose' requirements/pose.txt > "$pose_reqs"
  pip_install -r "$pose_reqs"
  rm -f "$pose_reqs"
  pip_install --no-deps "mmpose==1.3.2"
fi
say "verifying xtcocotools against the installed numpy"
"$PYTHON" - <<'EOF' || die "xtcocotools' compiled part does not load against the installed numpy (its wheel needs numpy<2, see above): reinstall numpy<2 and xtcocotools, then rerun"
import numpy, xtcocotools._mask  # noqa: F401  (fails with "numpy.dtype size changed" on numpy 2)
print(f'[setup] xtcocotools loads with numpy {numpy.__version__}')
EOF

# 6. deployment: onnx + onnxruntime (+ onnxscript for the dynamo exporter), and mmdeploy
#    without its protobuf<=3.20.2 requirement (onnx 1.23 needs a newer protobuf)
if have <<'EOF'
import importlib.metadata as m
for k, v in {'onnx': '1.23.2', 'onnxruntime': '1.32.0', 'onnxscript': '0.7.2',
             'mmdeploy': '1.3.1'}.items():
    assert m.version(k) == v, k
import onnxruntime, onnxscript  # noqa
from mmdeploy.apis import torch2onnx  # noqa
EOF
then say "onnx 1.23.2, onnxruntime 1.32.0, onnxscript 0.7.2, mmdeploy 1.3.1 present"
else
  say "installing onnx, onnxruntime, onnxscript, mmdeploy==1.3.1 (--no-deps: its protobuf pin)"
  deploy_reqs="$(mktemp)"
  grep -v '^mmdeploy' requirements/deploy.txt > "$deploy_reqs"
  pip_install -r "$deploy_reqs"
  rm -f "$deploy_reqs"
  pip_install --no-deps "mmdeploy==1.3.1"
fi
say "verifying onnxruntime and mmdeploy against the installed numpy / protobuf"
"$PYTHON" - <<'EOF' || die "onnxruntime or mmdeploy does not import against the installed numpy/protobuf (see above)"
import numpy, onnx, onnxruntime as ort  # noqa: F401
from mmdeploy.apis import torch2onnx  # noqa: F401
print(f'[setup] onnxruntime {ort.__version__} and mmdeploy load with numpy {numpy.__version__}')
EOF

# 7. timm (the extra mmscope[timm]: both families under the released timm names), --no-deps
if have <<'EOF'
import importlib.metadata as m
assert m.version('timm') == '1.0.31'
import mmscope.timm  # noqa
EOF
then say "timm 1.0.31 present (mmscope.timm)"
else
  say "installing timm==1.0.31 (--no-deps: its requirements would resolve another torch)"
  pip_install --no-deps -r requirements/timm.txt
  "$PYTHON" -c "import mmscope.timm" || die "mmscope.timm does not import with the installed timm (see above)"
fi

if have <<'EOF'
import importlib.util
assert importlib.util.find_spec('transformers') is None
EOF
then :; else say "WARNING: 'transformers' is installed in this env; it breaks mmpretrain imports"; fi

if [ -n "${OFFICIAL_DEPS:-}" ]; then
  if PYTHONPATH="$OFFICIAL_DEPS" have <<'EOF'
import timm, einops  # noqa
EOF
  then say "timm + einops for the released code present in $OFFICIAL_DEPS"
  else
    say "installing timm + einops for the released code into $OFFICIAL_DEPS (not into the env)"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip install --disable-pip-version-check --no-deps $PIP_EXTRA \
        --target "$OFFICIAL_DEPS" -r requirements/official.txt
  fi
  say "for the live comparison: MMSCOPE_OFFICIAL_DEPS=$OFFICIAL_DEPS MMSCOPE_OFFICIAL_CODE=DIR"
fi

say "environment ready: $PYTHON"
