#!/usr/bin/env bash
# Stop the services infra/serve.sh started for this data root: SIGTERM to each process group, SIGKILL to
# what is left after STOP_TIMEOUT seconds (default 20). Services not running are skipped.
# Usage: infra/stop.sh     Env: MARD_ROOT (data root, default <project>/runs), STOP_TIMEOUT
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$(realpath -m "${MARD_ROOT:-$PROJECT/runs}")/.services"
STOP_TIMEOUT="${STOP_TIMEOUT:-20}"

stop() {  # NAME
  local name=$1 pidfile="$STATE/$1.pid" pid start=$SECONDS
  pid="$(cat "$pidfile" 2>/dev/null)" || { echo "$name: not running"; return; }
  if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null || [[ "$(ps -o pgid= -p "$pid" | tr -d ' ')" != "$pid" ]]; then
    echo "$name: not running (stale pid file removed)"
    rm -f "$pidfile" "$STATE/$name.port"
    return
  fi
  kill -TERM -- "-$pid" 2>/dev/null || true
  while kill -0 -- "-$pid" 2>/dev/null; do
    if (( SECONDS - start >= STOP_TIMEOUT )); then
      echo "$name: still running after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile" "$STATE/$name.port"
  echo "$name: stopped (process group $pid) in $((SECONDS - start)) s"
}

# The worker first, so no flow run is picked up by a worker whose server is gone.
for name in prefect-worker prefect-server mlflow-server; do
  stop "$name"
done
