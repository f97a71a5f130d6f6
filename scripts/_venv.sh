# Sourced by run.sh and test.sh: make sure .venv exists with this pyproject's dependencies.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "CreditGuard needs Python 3.11 or newer as '$PYTHON' (set PYTHON=...)." >&2
  exit 1
fi
stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.creditguard-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "Setting up .venv (first run or dependencies changed)…" >&2
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$stamp" > .venv/.creditguard-stamp
fi
