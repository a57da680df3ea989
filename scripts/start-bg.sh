#!/usr/bin/env bash
# (Re)starts a long-running demo process in the background: start-bg.sh NAME COMMAND...
# Its pid goes to .run/NAME.pid and its output to .run/NAME.log; `make stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
mkdir -p .run
pidfile=.run/$name.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  old=$(cat "$pidfile")
  kill "$old"
  for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$old" 2>/dev/null; then kill -9 "$old"; fi
fi
nohup "$@" > ".run/$name.log" 2>&1 &
echo $! > "$pidfile"
sleep 1
if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "$name did not stay up; last lines of .run/$name.log:" >&2
  tail -20 ".run/$name.log" >&2
  exit 1
fi
