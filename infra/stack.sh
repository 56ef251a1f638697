#!/usr/bin/env bash
# The whole local stack on 127.0.0.1: start | stop | status.
#
#   Prefect server   infra/prefect_server.sh, port $IDS_PREFECT_PORT (4200)
#   flow runner      python -m flows.serve: nightly/scheduled, retrain/on-demand,
#                    monitor/hourly (pid and log under $IDS_HOME/stack/)
#   scoring service  bentoml serve bentos.service:IDSService, port $IDS_SERVICE_PORT (3000)
#   Evidently UI     evidently ui --workspace $IDS_HOME/evidently, port $IDS_EVIDENTLY_PORT (8000)
#
# Everything binds 127.0.0.1; state lives under $IDS_HOME (default <repo>/home).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export IDS_HOME="${IDS_HOME:-$REPO_ROOT/home}"
HOST=127.0.0.1
PREFECT_PORT="${IDS_PREFECT_PORT:-4200}"
SERVICE_PORT="${IDS_SERVICE_PORT:-3000}"
EVIDENTLY_PORT="${IDS_EVIDENTLY_PORT:-8000}"
VENV="${IDS_VENV:-$REPO_ROOT/.venv}"
PYTHON="$VENV/bin/python"
STACK_DIR="$IDS_HOME/stack"
START_TIMEOUT_S="${IDS_STACK_START_TIMEOUT_S:-120}"

export IDS_PREFECT_PORT="$PREFECT_PORT"
export PREFECT_HOME="${PREFECT_HOME:-$IDS_HOME/prefect}"
export BENTOML_HOME="${BENTOML_HOME:-$IDS_HOME/bentoml}"
export KERAS_HOME="${KERAS_HOME:-$IDS_HOME/keras}"
# The UI asks this address for its data; Prefect's default names port 4200.
export PREFECT_UI_API_URL="http://$HOST:$PREFECT_PORT/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export BENTOML_DO_NOT_TRACK=True GX_ANALYTICS_ENABLED=False
export IDS_SERVICE_URL="${IDS_SERVICE_URL:-http://$HOST:$SERVICE_PORT}"
export IDS_EVIDENTLY_URL="${IDS_EVIDENTLY_URL:-http://$HOST:$EVIDENTLY_PORT}"
export PREFECT_LOGGING_EXTRA_LOGGERS="${PREFECT_LOGGING_EXTRA_LOGGERS:-ids,flows}"

usage() {
    echo "usage: $0 start|stop|status" >&2
    exit 2
}

pid_of() {
    # The pid of a part if its pid file names a live process.
    local file="$STACK_DIR/$1.pid" pid
    [ -f "$file" ] || return 1
    pid="$(cat "$file")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

answers() {
    "$PYTHON" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
    sys.exit(0 if response.status == 200 else 1)
EOF
}

launch() {
    # launch NAME HEALTH_URL COMMAND...: start in its own process group, wait.
    local name="$1" health="$2" pid waited=0
    shift 2
    if pid="$(pid_of "$name")"; then
        echo "$name already running (pid $pid)"
        return 0
    fi
    # setsid: the part leads its own process group, which `end` stops whole;
    # $! is then the part itself (no wrapper shell holding this script's output).
    setsid "$@" >>"$STACK_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$STACK_DIR/$name.pid"
    sleep 0.5
    until [ -z "$health" ] || answers "$health"; do
        if ! pid_of "$name" >/dev/null; then
            echo "$name exited during start-up; last lines of $STACK_DIR/$name.log:" >&2
            tail -n 30 "$STACK_DIR/$name.log" >&2
            return 1
        fi
        if [ "$waited" -ge "$START_TIMEOUT_S" ]; then
            echo "$name did not answer $health in ${START_TIMEOUT_S}s" >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    echo "$name running (pid $(cat "$STACK_DIR/$name.pid"))${health:+, $health}"
}

end() {
    local name="$1" pid waited=0
    if ! pid="$(pid_of "$name")"; then
        rm -f "$STACK_DIR/$name.pid"
        echo "$name not running"
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 30 ]; do
        sleep 0.5
        waited=$((waited + 1))
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$STACK_DIR/$name.pid"
    echo "$name stopped (pid $pid)"
}

start() {
    mkdir -p "$STACK_DIR" "$IDS_HOME/evidently"
    "$REPO_ROOT/infra/prefect_server.sh" start
    export PREFECT_API_URL="http://$HOST:$PREFECT_PORT/api"
    launch service "http://$HOST:$SERVICE_PORT/readyz" \
        "$PYTHON" -m bentoml serve bentos.service:IDSService \
        --host "$HOST" --port "$SERVICE_PORT"
    launch evidently "http://$HOST:$EVIDENTLY_PORT/" \
        "$VENV/bin/evidently" ui --workspace "$IDS_HOME/evidently" \
        --host "$HOST" --port "$EVIDENTLY_PORT"
    launch runner "" "$PYTHON" -m flows.serve
    cat <<EOF

Stack up on $HOST (home $IDS_HOME):
  Prefect UI     http://$HOST:$PREFECT_PORT   (artifacts: /artifacts)
  service        $IDS_SERVICE_URL   (POST /score, GET /ids/champions)
  Evidently UI   $IDS_EVIDENTLY_URL
  flow runner    logs in $STACK_DIR/runner.log
Clients: export PREFECT_API_URL=$PREFECT_API_URL IDS_HOME=$IDS_HOME
EOF
}

stop() {
    end runner
    end evidently
    end service
    "$REPO_ROOT/infra/prefect_server.sh" stop
}

status() {
    local code=0 pid
    "$REPO_ROOT/infra/prefect_server.sh" status || code=1
    for name in service evidently runner; do
        if pid="$(pid_of "$name")"; then
            echo "$name running (pid $pid)"
        else
            echo "$name not running"
            code=3
        fi
    done
    return "$code"
}

[ $# -eq 1 ] || usage
cd "$REPO_ROOT"
case "$1" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
