#!/usr/bin/env bash
# The whole test suite: ruff (lint and format), mypy, then pytest against
# PostgreSQL and Redis (TEST_DATABASE_URL / TEST_REDIS_URL to point elsewhere), with
# browser tests in Debian's chromium (installed here when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
# The browser tests drive Debian's chromium (never a browser download).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's chromium for the browser tests…" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "The browser tests need Debian's chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
# The PgBouncer test (tests/ops/test_pgbouncer.py) runs Debian's pgbouncer; without it,
# and not root to install it, that test is skipped and says why.
if [ ! -x /usr/sbin/pgbouncer ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's pgbouncer for the PgBouncer test…" >&2
  { apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; } \
    || echo "Could not install pgbouncer: the PgBouncer test will be skipped" >&2
fi
export CREDITGUARD_ENV=test
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/creditguard}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
# Close connections after each request, so that no live-server thread keeps one open
# when the test database is dropped.
export DATABASE_CONN_MAX_AGE=0
# One command per line: under `set -e` a failure inside an && list would not stop the script.
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy .
echo "== import-linter (the layer contracts in pyproject.toml)"
.venv/bin/lint-imports
echo "== pytest"
# In parallel (pytest-xdist): a worker a core, four at most, each with a test database and
# a Redis database of its own (tests/conftest.py); the tests that may not run beside each
# other share a worker (XDIST_GROUPS there). `./scripts/test.sh -n 0` runs them serially.
.venv/bin/pytest -n auto --maxprocesses=4 --dist loadgroup "$@"
