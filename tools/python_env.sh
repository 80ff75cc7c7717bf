# Sourced by tools/*.sh: the interpreter they run, and their argument checks.
# PYTHON: $PYTHON if set; else `python` of an activated environment ($VIRTUAL_ENV);
# else the project's .venv (made by `make setup`) when it exists; else `python`.
if [ -z "${PYTHON:-}" ]; then
  if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$here/../.venv/bin/python" ]; then
    PYTHON="$here/../.venv/bin/python"
  else
    PYTHON=python
  fi
fi

# require_count NAME VALUE: exit 2 with a message unless VALUE is a positive integer.
require_count() {
  case "$2" in
    '' | *[!0-9]* | 0 | 0*)
      echo "error: $1 must be a positive integer, got '$2'" >&2; exit 2 ;;
  esac
}
