#!/usr/bin/env bash
# Local stand-ins for the shared services of a multi-host set-up, on 127.0.0.1 only:
#   PostgreSQL (Debian's binaries, a throw-away data directory) holding the databases `optuna`
#   and `mlflow`, and an `mlflow server` on that backend with a local artifact root.
#
#   scripts/services.sh install   apt-get install postgresql when its binaries are missing
#   scripts/services.sh up        start both (idempotent); prints `export` lines on stdout:
#                                   eval "$(scripts/services.sh up)"
#   scripts/services.sh status    say what runs; exit 0 when both answer, 3 otherwise
#   scripts/services.sh env       print the `export` lines again
#   scripts/services.sh down      stop exactly the processes `up` started (pid files)
#   scripts/services.sh purge     down, then delete the data directory
#
# Settings (environment): AUDIORECON_SERVICES_DIR (default <repo>/.services),
# AUDIORECON_PG_PORT (54329), AUDIORECON_MLFLOW_PORT (5055), AUDIORECON_MLFLOW_WORKERS (2),
# AUDIORECON_SERVICES_TIMEOUT (seconds to wait for each service, 120), PYTHON (the venv's).
# The database password is generated per data directory and kept in <dir>/env (mode 600); it
# is never put on a command line, so `ps` does not show it.
set -euo pipefail

HOST=127.0.0.1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${AUDIORECON_SERVICES_DIR:-$REPO/.services}"
PG_PORT="${AUDIORECON_PG_PORT:-54329}"
MLFLOW_PORT="${AUDIORECON_MLFLOW_PORT:-5055}"
MLFLOW_WORKERS="${AUDIORECON_MLFLOW_WORKERS:-2}"
TIMEOUT="${AUDIORECON_SERVICES_TIMEOUT:-120}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
DB_USER=audiorecon
PGDATA="$DIR/pg"
PG_LOG="$DIR/postgres.log"
MLFLOW_LOG="$DIR/mlflow.log"
MLFLOW_PID="$DIR/mlflow.pid"
ENV_FILE="$DIR/env"
ARTIFACTS="$DIR/mlartifacts"

say() { echo "services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

pg_bin() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$d" && -x "$d/initdb" ]] && echo "$d"
}

# PostgreSQL refuses to run as root: as root, run its server-side tools as `postgres`.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_in_use() {
    "$PYTHON" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are no owner
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
EOF
}

cmd_install() {
    if pg_bin >/dev/null; then
        say "PostgreSQL already installed: $(pg_bin)"
        return 0
    fi
    [[ $EUID -eq 0 ]] || die "PostgreSQL is missing; run as root (or: sudo apt-get install postgresql)"
    command -v apt-get >/dev/null || die "PostgreSQL is missing and apt-get is not available"
    say "installing PostgreSQL (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    pg_bin >/dev/null || die "apt-get finished but /usr/lib/postgresql/*/bin/initdb is missing"
    say "installed: $(pg_bin)"
}

password() { cat "$DIR/password"; }

write_env() {
    local pw
    pw="$(password)"
    umask 077
    cat >"$ENV_FILE" <<EOF
export OPTUNA_STORAGE='postgresql+psycopg2://$DB_USER:$pw@$HOST:$PG_PORT/optuna'
export MLFLOW_TRACKING_URI='http://$HOST:$MLFLOW_PORT'
EOF
}

pg_running() {
    local bin="$1"
    [[ -f "$PGDATA/postmaster.pid" ]] && as_pg "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

pg_up() {
    local bin="$1"
    if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
        say "initdb $PGDATA"
        mkdir -p "$PGDATA"
        chmod 700 "$PGDATA"
        [[ -f "$DIR/password" ]] || (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/password")
        local pwfile="$DIR/.pwfile"
        install -m 600 "$DIR/password" "$pwfile"
        if [[ $EUID -eq 0 ]]; then
            chown postgres: "$PGDATA" "$pwfile"
            as_pg test -w "$PGDATA" || die "user postgres cannot write $PGDATA (a parent folder closed to it?); set AUDIORECON_SERVICES_DIR"
        fi
        as_pg "$bin/initdb" -D "$PGDATA" -U "$DB_USER" --pwfile="$pwfile" -E UTF8 --no-locale \
            --auth-host=scram-sha-256 --auth-local=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
            || { rm -rf "$pwfile" "$PGDATA"; die "initdb failed, see $DIR/initdb.log"; }
        rm -f "$pwfile"
        # TCP on the loopback only; no Unix socket (its folder would need root's blessing).
        cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '$HOST'
unix_socket_directories = ''
max_connections = 100
fsync = off
EOF
    fi
    if pg_running "$bin"; then
        say "PostgreSQL already running ($PGDATA)"
        return 0
    fi
    port_in_use "$PG_PORT" && die "port $HOST:$PG_PORT is taken; set AUDIORECON_PG_PORT"
    touch "$PG_LOG"
    [[ $EUID -eq 0 ]] && chown postgres: "$PG_LOG"
    as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t "$TIMEOUT" -o "-p $PG_PORT" start >/dev/null \
        || die "PostgreSQL did not start, see $PG_LOG"
    say "PostgreSQL on $HOST:$PG_PORT"
}

psql_c() {
    local bin="$1"; shift
    PGPASSWORD="$(password)" PGCONNECT_TIMEOUT=5 "$bin/psql" -h "$HOST" -p "$PG_PORT" -U "$DB_USER" \
        -d postgres -v ON_ERROR_STOP=1 -qtAc "$@"
}

create_dbs() {
    local bin="$1" db
    for db in optuna mlflow; do
        if [[ "$(psql_c "$bin" "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]]; then
            psql_c "$bin" "CREATE DATABASE $db" >/dev/null
            say "created database $db"
        fi
    done
}

mlflow_pid() {
    # The recorded pid, if that process is still the mlflow server we started.
    [[ -f "$MLFLOW_PID" ]] || return 1
    local pid
    pid="$(cat "$MLFLOW_PID")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "mlflow server" || return 1
    echo "$pid"
}

mlflow_answers() {
    curl -fsS --max-time 3 "http://$HOST:$MLFLOW_PORT/health" >/dev/null 2>&1
}

mlflow_up() {
    if mlflow_pid >/dev/null; then
        say "mlflow server already running (pid $(mlflow_pid))"
    else
        local mlflow_bin
        mlflow_bin="$(dirname "$PYTHON")/mlflow"
        [[ -x "$mlflow_bin" ]] || die "$mlflow_bin not found; run \`make install\` first (or set PYTHON)"
        port_in_use "$MLFLOW_PORT" && die "port $HOST:$MLFLOW_PORT is taken; set AUDIORECON_MLFLOW_PORT"
        mkdir -p "$ARTIFACTS"
        # setsid: the server and its uvicorn workers form one process group that `down` stops.
        # The backend URI (with the password) goes through the environment, not argv.
        MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://$DB_USER:$(password)@$HOST:$PG_PORT/mlflow" \
        MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
            setsid "$mlflow_bin" server --host "$HOST" --port "$MLFLOW_PORT" \
            --workers "$MLFLOW_WORKERS" --serve-artifacts --artifacts-destination "$ARTIFACTS" \
            >"$MLFLOW_LOG" 2>&1 </dev/null &
        echo $! >"$MLFLOW_PID"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until mlflow_answers; do
        mlflow_pid >/dev/null || die "mlflow server exited, see $MLFLOW_LOG: $(tail -n 3 "$MLFLOW_LOG" 2>/dev/null)"
        ((SECONDS < deadline)) || die "mlflow server did not answer within ${TIMEOUT}s, see $MLFLOW_LOG"
        sleep 1
    done
    say "mlflow server on http://$HOST:$MLFLOW_PORT (artifacts in $ARTIFACTS)"
}

cmd_up() {
    local bin
    bin="$(pg_bin)" || die "PostgreSQL is not installed; run: scripts/services.sh install"
    [[ -x "$PYTHON" ]] || die "$PYTHON not found; run \`make install\` first (or set PYTHON)"
    if [[ ! -d "$DIR" ]]; then
        mkdir -p "$DIR"
        chmod 755 "$DIR"  # the `postgres` user enters it to reach its data directory
    fi
    pg_up "$bin"
    create_dbs "$bin"
    write_env
    mlflow_up
    cat "$ENV_FILE"
}

stop_group() {
    # SIGTERM the process group, SIGKILL whatever is left after 20 s.
    local pgid="$1" i
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for ((i = 0; i < 40; i++)); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.5
    done
    say "mlflow server group $pgid ignored SIGTERM; SIGKILL"
    kill -KILL -- "-$pgid" 2>/dev/null || true
}

cmd_down() {
    local pid bin
    if pid="$(mlflow_pid)"; then
        stop_group "$pid"
        say "mlflow server stopped (pid $pid)"
    else
        say "mlflow server not running"
    fi
    rm -f "$MLFLOW_PID"
    bin="$(pg_bin || true)"
    if [[ -n "$bin" ]] && pg_running "$bin"; then
        as_pg "$bin/pg_ctl" -D "$PGDATA" -m fast -w -t "$TIMEOUT" stop >/dev/null
        say "PostgreSQL stopped ($PGDATA)"
    else
        say "PostgreSQL not running"
    fi
}

cmd_status() {
    local bin ok=0
    bin="$(pg_bin || true)"
    if [[ -n "$bin" ]] && pg_running "$bin"; then
        say "PostgreSQL: running on $HOST:$PG_PORT ($PGDATA)"
    else
        say "PostgreSQL: not running"; ok=3
    fi
    if mlflow_pid >/dev/null && mlflow_answers; then
        say "mlflow server: running on http://$HOST:$MLFLOW_PORT (pid $(mlflow_pid))"
    else
        say "mlflow server: not running"; ok=3
    fi
    return $ok
}

cmd_env() {
    [[ -f "$ENV_FILE" ]] || die "no $ENV_FILE; run: scripts/services.sh up"
    cat "$ENV_FILE"
}

cmd_purge() {
    cmd_down
    [[ -d "$DIR" ]] && rm -rf "$DIR" && say "deleted $DIR"
    return 0
}

case "${1:-}" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    purge) cmd_purge ;;
    *) echo "usage: $0 install|up|status|env|down|purge" >&2; exit 2 ;;
esac
