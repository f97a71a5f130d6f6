#!/usr/bin/env bash
# The whole test suite: ruff (lint and format), mypy, then pytest against
# PostgreSQL and Redis (TEST_DATABASE_URL / TEST_REDIS_URL to point elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
export CREDITGUARD_ENV=test
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/creditguard}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
# One command per line: under `set -e` a failure inside an && list would not stop the script.
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy .
echo "== pytest"
.venv/bin/pytest "$@"
