#!/usr/bin/env bash
# Local Prefect server on 127.0.0.1 for this project: start | stop | status.
#
# State lives under the project home ($IDS_HOME, default <repo>/home):
#   $PREFECT_HOME (default $IDS_HOME/prefect)  Prefect's home
#   $PREFECT_HOME/prefect.db                    SQLite database (unless
#                                               PREFECT_API_DATABASE_CONNECTION_URL is set)
#   $PREFECT_HOME/server.pid, server.log        pid and log of the server
# Port: $IDS_PREFECT_PORT (default 4200). Prefect binary: $PREFECT_BIN
# (default <repo>/.venv/bin/prefect, else `prefect` on PATH).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IDS_HOME="${IDS_HOME:-$REPO_ROOT/home}"
PREFECT_HOME="${PREFECT_HOME:-$IDS_HOME/prefect}"
PORT="${IDS_PREFECT_PORT:-4200}"
HOST=127.0.0.1
PID_FILE="$PREFECT_HOME/server.pid"
LOG_FILE="$PREFECT_HOME/server.log"
START_TIMEOUT_S="${IDS_PREFECT_START_TIMEOUT_S:-90}"
API_URL="http://$HOST:$PORT/api"

if [ -z "${PREFECT_BIN:-}" ]; then
    if [ -x "$REPO_ROOT/.venv/bin/prefect" ]; then
        PREFECT_BIN="$REPO_ROOT/.venv/bin/prefect"
    else
        PREFECT_BIN="$(command -v prefect || true)"
    fi
fi
PYTHON="$(dirname "${PREFECT_BIN:-/usr/bin/python3}")/python"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"

usage() {
    echo "usage: $0 start|stop|status" >&2
    exit 2
}

running_pid() {
    # Prints the pid if the pid file names a live process; fails otherwise.
    [ -f "$PID_FILE" ] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

healthy() {
    "$PYTHON" - "$API_URL/health" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
    sys.exit(0 if response.status == 200 else 1)
EOF
}

start() {
    if pid="$(running_pid)"; then
        echo "Prefect server already running (pid $pid) at $API_URL"
        return 0
    fi
    if [ -z "$PREFECT_BIN" ]; then
        echo "prefect not found: set PREFECT_BIN or create $REPO_ROOT/.venv" >&2
        return 1
    fi
    mkdir -p "$PREFECT_HOME"
    export PREFECT_HOME
    export PREFECT_API_DATABASE_CONNECTION_URL="${PREFECT_API_DATABASE_CONNECTION_URL:-sqlite+aiosqlite:///$PREFECT_HOME/prefect.db}"
    export PREFECT_SERVER_ANALYTICS_ENABLED=false
    export DO_NOT_TRACK=1
    unset PREFECT_API_URL
    # setsid: the server and its workers form one process group that stop can end.
    setsid "$PREFECT_BIN" server start --host "$HOST" --port "$PORT" \
        >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    local waited=0
    until healthy; do
        if ! running_pid >/dev/null; then
            echo "Prefect server exited during start-up; last lines of $LOG_FILE:" >&2
            tail -n 30 "$LOG_FILE" >&2
            rm -f "$PID_FILE"
            return 1
        fi
        if [ "$waited" -ge "$START_TIMEOUT_S" ]; then
            echo "Prefect server not healthy after ${START_TIMEOUT_S}s; see $LOG_FILE" >&2
            stop
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    echo "Prefect server running (pid $(cat "$PID_FILE")) at $API_URL"
    echo "UI: http://$HOST:$PORT  -  clients: export PREFECT_API_URL=$API_URL"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "Prefect server not running"
        rm -f "$PID_FILE"
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 20 ]; do
        sleep 0.5
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    echo "Prefect server stopped (pid $pid)"
}

status() {
    local pid
    if pid="$(running_pid)"; then
        if healthy; then
            echo "running (pid $pid) at $API_URL, healthy"
            return 0
        fi
        echo "running (pid $pid) at $API_URL, not answering /health"
        return 1
    fi
    echo "not running"
    return 3
}

[ $# -eq 1 ] || usage
case "$1" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
