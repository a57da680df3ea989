#!/usr/bin/env bash
# (Re)starts `citygrid serve` in the background for the demo and waits until it answers.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run
pidfile=.run/serve.pid
if [ -f $pidfile ] && kill -0 "$(cat $pidfile)" 2>/dev/null; then
  old=$(cat $pidfile)
  kill "$old"
  # The old server must be gone before the new one binds the port and answers health.
  for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$old" 2>/dev/null; then kill -9 "$old"; fi
fi
port=${CITYGRID_HTTP_PORT:-8000}
nohup .venv/bin/citygrid serve > .run/serve.log 2>&1 &
pid=$!
echo $pid > $pidfile
for _ in $(seq 1 150); do
  kill -0 $pid 2>/dev/null || break            # died (e.g. the port is taken): report below
  if curl -fs "http://127.0.0.1:$port/api/health" >/dev/null; then exit 0; fi
  sleep 0.2
done
echo "citygrid serve did not come up; last lines of .run/serve.log:" >&2
tail -20 .run/serve.log >&2
exit 1
