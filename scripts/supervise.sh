#!/usr/bin/env bash
# Run a command and start it again whenever it ends, until this script is told to stop
# (TERM, INT or HUP, which it passes on to the command before it exits):
#
#   scripts/supervise.sh .venv/bin/celery -A creditguard worker …
#
# A worker can die for good (a broker outage ended it with "Unrecoverable
# error"); this brings it back. The delay before a restart doubles from 1 s up to
# SUPERVISE_MAX_DELAY (30 s) while the command keeps dying quickly, and is 1 s again once
# it has run for SUPERVISE_STABLE_SECONDS (60 s). The command runs in a process group of
# its own, and whatever of it outlives it (a killed worker's embedded beat, its pool
# processes) is ended before it starts again, so that two beats never run.
set -uo pipefail
set -m
max_delay=${SUPERVISE_MAX_DELAY:-30}
stable=${SUPERVISE_STABLE_SECONDS:-60}
child=""
sleeper=""

stop() {
  trap - TERM INT HUP
  [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
    kill -TERM -- "-$child" 2>/dev/null
  fi
  exit 0
}
trap stop TERM INT HUP

delay=1
while true; do
  started=$SECONDS
  "$@" &
  child=$!
  wait "$child"
  status=$?
  kill -KILL -- "-$child" 2>/dev/null
  child=""
  if (( SECONDS - started >= stable )); then
    delay=1
  fi
  echo "supervise: $1 ended with status $status; starting it again in ${delay} s" >&2
  sleep "$delay" &
  sleeper=$!
  wait "$sleeper"
  sleeper=""
  delay=$(( delay * 2 > max_delay ? max_delay : delay * 2 ))
done
