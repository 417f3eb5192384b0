#!/usr/bin/env bash
# Start MARD's services in the background: the Prefect server (UI + API + automations), a process worker on
# the work pool (the pool is created if missing) and the MLflow tracking server. Each is waited for until
# healthy; one already running is left alone. Pid files and logs live in <data root>/.services/.
#
# Usage: infra/serve.sh            (stop them with infra/stop.sh)
# Env:   MARD_ROOT      data root (default <project>/runs)
#        PREFECT_PORT   Prefect server port (4200)       MLFLOW_PORT  MLflow server port (5000)
#        WORKER_PORT    worker health-check port (4201)  MARD_WORK_POOL  work pool name (mard-local)
#        PREFECT_API_DATABASE_CONNECTION_URL   default: SQLite under the data root; production sets a
#                       postgresql+asyncpg://... URL (see infra/prefect.production.env)
#        MLFLOW_BACKEND_STORE_URI / MLFLOW_DEFAULT_ARTIFACT_ROOT   default: SQLite and a directory under the
#                       data root; production: a database URL and s3://... (see infra/mlflow.production.env)
#        MLFLOW_WORKERS MLflow server processes (1)
#        SERVE_TIMEOUT  seconds to wait for each service to become healthy (180)
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${MARD_VENV:-$PROJECT/.venv}/bin"
ROOT="$(realpath -m "${MARD_ROOT:-$PROJECT/runs}")"
STATE="$ROOT/.services"
PREFECT_PORT="${PREFECT_PORT:-4200}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
WORKER_PORT="${WORKER_PORT:-4201}"
POOL="${MARD_WORK_POOL:-mard-local}"
SERVE_TIMEOUT="${SERVE_TIMEOUT:-180}"
PREFECT_URL="http://127.0.0.1:$PREFECT_PORT"
MLFLOW_URL="http://127.0.0.1:$MLFLOW_PORT"

[[ -x "$BIN/prefect" && -x "$BIN/mlflow" ]] || { echo "serve.sh: no prefect/mlflow in $BIN (run make install)" >&2; exit 1; }
mkdir -p "$STATE/logs" "$STATE/prefect/storage" "$STATE/mlartifacts"

# Shared by every service and by the flow runs the worker starts (same data root, same tracking server).
export MARD_ROOT="$ROOT"
export PREFECT_HOME="$STATE/prefect"
export PREFECT_LOCAL_STORAGE_PATH="$STATE/prefect/storage"
export PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_LOGGING_LOG_PRINTS=true
export DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true GX_ANALYTICS_ENABLED=false
export PREFECT_API_DATABASE_CONNECTION_URL="${PREFECT_API_DATABASE_CONNECTION_URL:-sqlite+aiosqlite:///$STATE/prefect/prefect.db}"

declare -A LAUNCHED=()  # service name -> $SECONDS at launch (for the start-up times printed)

running() {  # NAME: true when NAME's pid file names a live process group we started
  local pid
  pid="$(cat "$STATE/$1.pid" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && [[ "$(ps -o pgid= -p "$pid" | tr -d ' ')" == "$pid" ]]
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_healthy() {  # NAME URL
  local name=$1 url=$2 pid start=${LAUNCHED[$1]:-$SECONDS}
  pid="$(cat "$STATE/$name.pid")"
  until curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "serve.sh: $name exited during start-up; last lines of $STATE/logs/$name.log:" >&2
      tail -n 30 "$STATE/logs/$name.log" >&2
      exit 1
    fi
    if (( SECONDS - start > SERVE_TIMEOUT )); then
      echo "serve.sh: $name not healthy at $url after ${SERVE_TIMEOUT}s; see $STATE/logs/$name.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "$name: healthy in $((SECONDS - start)) s ($url)"
}

launch() {  # NAME PORT COMMAND...: start COMMAND in its own process group unless NAME runs
  local name=$1 port=$2
  shift 2
  if running "$name"; then
    if [[ "$(cat "$STATE/$name.port" 2>/dev/null)" != "$port" ]]; then
      echo "serve.sh: $name already runs on port $(cat "$STATE/$name.port" 2>/dev/null); run infra/stop.sh to change ports" >&2
      exit 1
    fi
    echo "$name: already running (pid $(cat "$STATE/$name.pid"))"
    return
  fi
  if port_busy "$port"; then
    echo "serve.sh: port $port (for $name) is in use by another process; choose another port" >&2
    exit 1
  fi
  # A background job of a script ignores SIGINT; reset that so the service can stop gracefully on a signal.
  (trap - INT QUIT; exec setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null) &
  echo $! >"$STATE/$name.pid.tmp"
  mv "$STATE/$name.pid.tmp" "$STATE/$name.pid"
  echo "$port" >"$STATE/$name.port"
  LAUNCHED[$name]=$SECONDS
}

# The two servers start side by side; the worker needs the Prefect API, so it comes after.
# Host and port as settings (not only flags): the UI derives the API address it calls from them.
launch prefect-server "$PREFECT_PORT" \
  env -u PREFECT_API_URL PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT="$PREFECT_PORT" \
  "$BIN/prefect" server start
launch mlflow-server "$MLFLOW_PORT" \
  env MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}" \
  "$BIN/mlflow" server \
  --backend-store-uri "${MLFLOW_BACKEND_STORE_URI:-sqlite:///$STATE/mlflow.db}" \
  --default-artifact-root "${MLFLOW_DEFAULT_ARTIFACT_ROOT:-$STATE/mlartifacts}" \
  --host 127.0.0.1 --port "$MLFLOW_PORT" --workers "${MLFLOW_WORKERS:-1}"
wait_healthy prefect-server "$PREFECT_URL/api/health"
wait_healthy mlflow-server "$MLFLOW_URL/health"

launch prefect-worker "$WORKER_PORT" \
  env PREFECT_API_URL="$PREFECT_URL/api" MLFLOW_TRACKING_URI="$MLFLOW_URL" \
  PREFECT_WORKER_WEBSERVER_HOST=127.0.0.1 PREFECT_WORKER_WEBSERVER_PORT="$WORKER_PORT" \
  "$BIN/prefect" worker start --pool "$POOL" --type process --create-pool-if-not-found \
  --install-policy never --with-healthcheck --name "$POOL-worker"
wait_healthy prefect-worker "http://127.0.0.1:$WORKER_PORT/health"

cat <<EOF

Prefect UI:  $PREFECT_URL        (flow runs: $PREFECT_URL/runs)
MLflow UI:   $MLFLOW_URL
Work pool:   $POOL (process worker; logs in $STATE/logs/)
Use them from this shell:
  export PREFECT_API_URL=$PREFECT_URL/api
  export MLFLOW_TRACKING_URI=$MLFLOW_URL
  export MARD_ROOT=$ROOT
EOF
