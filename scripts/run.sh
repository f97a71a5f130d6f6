#!/usr/bin/env bash
# Run the whole app with demo data at http://127.0.0.1:8000/.
# Embedded default: SQLite under var/ and no Redis. Set DATABASE_URL / REDIS_URL
# to run on PostgreSQL and Redis instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
mkdir -p var
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo
exec .venv/bin/python manage.py runserver "${BIND:-127.0.0.1:8000}"
