#!/usr/bin/env bash
# Run the whole app with demo data at http://127.0.0.1:8000/: the web server, and a
# Celery worker with beat in the background (warnings appear in its console e-mail),
# started again by scripts/supervise.sh whenever it dies; both stop with the server.
# Embedded default: SQLite and a filesystem broker under var/, no Redis. Set
# DATABASE_URL / REDIS_URL to run on PostgreSQL and Redis instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
mkdir -p var/celery/queue var/celery/processed
# Links in the demo's e-mails and the addresses it prints follow the address it serves.
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://${BIND:-127.0.0.1:8000}}
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo
# The server runs in the background too, so that a signal to this script stops both at
# once; when either the server ends or this script is stopped, the worker stops with it.
trap 'kill ${worker:-} ${server:-} 2>/dev/null; wait' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
scripts/supervise.sh .venv/bin/celery -A creditguard worker --beat --concurrency 1 \
  --loglevel INFO --schedule var/celery/beat-schedule &
worker=$!
.venv/bin/python manage.py runserver --noreload "${BIND:-127.0.0.1:8000}" &
server=$!
wait "$server"
