#!/usr/bin/env bash
# The style checks of .pre-commit-config.yaml on the whole tree, without pre-commit:
# isort, yapf and flake8 (settings in setup.cfg, versions in requirements/lint.txt), and
# no trailing whitespace or missing final newline in tracked text files. The tools live in
# a small environment of their own ($LINT_VENV, default .venv-lint; seconds to set up), so
# the check needs neither the torch stack nor any download beyond the package registry.
# `make lint` runs this; .ci/run runs it before the tests. Exit status 1 names each failure.
set -euo pipefail
cd "$(dirname "$0")/.."
LINT_VENV="${LINT_VENV:-.venv-lint}"
BASE_PYTHON="${BASE_PYTHON:-python3.11}"
PATHS=(mmscope tools tests configs demo projects setup.py conftest.py)

if ! "$LINT_VENV/bin/python" -c 'import flake8, isort, yapf' 2>/dev/null ||
   ! cmp -s requirements/lint.txt "$LINT_VENV/.lint-requirements"; then
  echo "[lint] installing requirements/lint.txt into $LINT_VENV"
  "$BASE_PYTHON" -m venv "$LINT_VENV"
  # PIP_FIND_LINKS of this machine points at a torch wheel, which none of these need
  PIP_FIND_LINKS= "$LINT_VENV/bin/python" -m pip install --disable-pip-version-check -q \
    -r requirements/lint.txt
  cp requirements/lint.txt "$LINT_VENV/.lint-requirements"
fi

failed=0
check() {  # check NAME COMMAND...: run it, report, remember a failure
  if "${@:2}"; then echo "[lint] $1: ok"; else echo "[lint] $1: FAILED"; failed=1; fi
}
check isort "$LINT_VENV/bin/isort" --check-only --diff "${PATHS[@]}"
check yapf "$LINT_VENV/bin/yapf" --diff --recursive --parallel "${PATHS[@]}"
check flake8 "$LINT_VENV/bin/flake8" "${PATHS[@]}"

whitespace() {
  local bad=0 f
  while IFS= read -r f; do
    [ -f "$f" ] || continue
    grep -Iq . "$f" || continue  # binary or empty
    if grep -nE '[[:space:]]+$' "$f" | head -3 | sed "s|^|$f:|" | grep .; then bad=1; fi
    if [ -n "$(tail -c1 "$f")" ]; then echo "$f: no newline at the end"; bad=1; fi
  done < <(git ls-files -co --exclude-standard -- . ':!tests/golden/*.json' \
             ':!docs/benchmarks_data/*')
  return $bad
}
check whitespace whitespace
exit $failed
