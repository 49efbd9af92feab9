#!/usr/bin/env bash
# Local test services as plain processes (no systemd, no Docker), state under one folder.
#
#   bash scripts/services.sh start  [postgres] [rabbitmq] [orthanc]   (default: postgres rabbitmq)
#   bash scripts/services.sh stop   [...]                              (stops only what this script started)
#   bash scripts/services.sh status [...]
#
# A service whose port already answers is left alone ("already running"), so on a machine or CI
# image that runs its own PostgreSQL/RabbitMQ nothing is started. Readiness probes speak the
# protocol: pg_isready, rabbitmqctl await_startup + an AMQP 0-9-1 handshake, GET /system on Orthanc.
#
# Knobs (environment):
#   SIMPUL_SERVICES_DIR        state folder                        (default /tmp/simpul-services)
#   SIMPUL_PG_PORT             PostgreSQL port on 127.0.0.1        (default 5432)
#   SIMPUL_AMQP_PORT           RabbitMQ AMQP port on 127.0.0.1     (default 5672)
#   SIMPUL_RABBITMQ_DIST_PORT  Erlang distribution port            (default AMQP port +/- 20000)
#   SIMPUL_ORTHANC_HTTP_PORT   Orthanc REST/DICOMweb port          (default 8042)
#   SIMPUL_ORTHANC_DICOM_PORT  Orthanc DICOM port                  (default 4242)
#   SIMPUL_START_TIMEOUT       seconds to wait for readiness       (default 90)
#
# `start` ends with one summary line, e.g.
#   services: postgres=started(127.0.0.1:5432) rabbitmq=already-running(127.0.0.1:5672)
# Per-service state folders carry the port in their name, so a second stack on other ports can
# run next to the first one.
set -euo pipefail

STATE_DIR="${SIMPUL_SERVICES_DIR:-/tmp/simpul-services}"
PG_PORT="${SIMPUL_PG_PORT:-5432}"
AMQP_PORT="${SIMPUL_AMQP_PORT:-5672}"
_dist_default=$((AMQP_PORT + 20000)); [ "$_dist_default" -gt 65535 ] && _dist_default=$((AMQP_PORT - 20000))
RABBITMQ_DIST_PORT="${SIMPUL_RABBITMQ_DIST_PORT:-$_dist_default}"
ORTHANC_HTTP_PORT="${SIMPUL_ORTHANC_HTTP_PORT:-8042}"
ORTHANC_DICOM_PORT="${SIMPUL_ORTHANC_DICOM_PORT:-4242}"
START_TIMEOUT="${SIMPUL_START_TIMEOUT:-90}"
HOST=127.0.0.1

PG_DIR="$STATE_DIR/postgres-$PG_PORT"
RMQ_DIR="$STATE_DIR/rabbitmq-$AMQP_PORT"
RMQ_NODE="simpul$AMQP_PORT@localhost"     # node names must be unique per host; follow the port
ORTHANC_DIR="$STATE_DIR/orthanc-$ORTHANC_HTTP_PORT"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'services.sh: error: %s\n' "$*" >&2; exit 1; }

port_answers() {  # port_answers PORT -> 0 when something accepts TCP on 127.0.0.1:PORT
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" >/dev/null 2>&1
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pid_in() { [ -f "$1" ] && cat "$1"; return 0; }  # pid_in FILE -> the pid this script wrote there, or nothing

report_status() {  # report_status PIDFILE PROBE... -> ready(ours|other) when PROBE passes, else down
    local owner="other" pidfile="$1"; shift
    pid_alive "$(pid_in "$pidfile")" && owner="ours"
    if "$@"; then echo "ready($owner)"; else echo "down"; fi
}

await_started() {  # await_started NAME PID LOG PORT PROBE...: poll PROBE; die when PID exits or on timeout
    local name="$1" pid="$2" log_file="$3" port="$4"; shift 4
    local deadline=$((SECONDS + START_TIMEOUT))
    until "$@"; do
        pid_alive "$pid" || { show_log_tail "$log_file"; die "$name exited during start"; }
        [ "$SECONDS" -ge "$deadline" ] && { show_log_tail "$log_file"; die "$name not ready on $HOST:$port in ${START_TIMEOUT}s"; }
        sleep 0.2
    done
}

wait_pid_gone() {  # gVisor reaps slowly: poll instead of sleeping a fixed time
    local pid="$1" waited=0
    while pid_alive "$pid" && [ "$waited" -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
    ! pid_alive "$pid"
}

show_log_tail() { [ -f "$1" ] && { log "--- last lines of $1 ---"; tail -n 25 "$1" >&2; }; return 0; }

as_postgres() {  # initdb and the server refuse to run as root
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$dir" ] && [ -x "$dir/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)"
    printf '%s' "$dir"
}

# ---------------------------------------------------------------- PostgreSQL
postgres_start() {
    if port_answers "$PG_PORT"; then echo "already-running"; return 0; fi
    local bin; bin="$(pg_bin)"
    mkdir -p "$STATE_DIR" "$PG_DIR"
    chmod 755 "$STATE_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DIR"
    chmod 700 "$PG_DIR"
    if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
        log "==> postgres: initdb in $PG_DIR/data"
        # Trust on loopback only: a throwaway test cluster that tests reach as postgres@127.0.0.1.
        as_postgres "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust --auth-host=trust \
            -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
            || { show_log_tail "$PG_DIR/initdb.log"; die "initdb failed"; }
    fi
    log "==> postgres: starting on $HOST:$PG_PORT"
    # fsync=off: test data only, and the cluster still survives a crash of the postgres process.
    as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t "$START_TIMEOUT" \
        -o "-c listen_addresses=$HOST -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=200" start \
        >"$PG_DIR/pg_ctl.log" 2>&1 \
        || { show_log_tail "$PG_DIR/postgres.log"; die "PostgreSQL did not start on $HOST:$PG_PORT"; }
    postgres_await_ready || { show_log_tail "$PG_DIR/postgres.log"; die "PostgreSQL on $HOST:$PG_PORT is not ready"; }
    echo "started"
}

postgres_await_ready() {
    local deadline=$((SECONDS + START_TIMEOUT))
    until pg_isready -q -h "$HOST" -p "$PG_PORT" -t 2; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

postgres_stop() {
    if [ ! -f "$PG_DIR/data/postmaster.pid" ]; then echo "not-ours"; return 0; fi
    as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
        || die "pg_ctl stop failed for $PG_DIR/data (see $PG_DIR/postgres.log)"
    echo "stopped"
}

postgres_status() {
    local owner="other"
    [ -f "$PG_DIR/data/postmaster.pid" ] && owner="ours"
    if pg_isready -q -h "$HOST" -p "$PG_PORT" -t 2; then echo "ready($owner)"; else echo "down"; fi
}

# ---------------------------------------------------------------- RabbitMQ
rabbitmq_env() {
    # Run as root against our own folder; the /usr/sbin wrappers would su to rabbitmq and use
    # another cookie (components.md section 2).
    export HOME="$RMQ_DIR" RABBITMQ_NODENAME="$RMQ_NODE" RABBITMQ_NODE_IP_ADDRESS="$HOST" \
        RABBITMQ_NODE_PORT="$AMQP_PORT" RABBITMQ_DIST_PORT="$RABBITMQ_DIST_PORT" ERL_EPMD_ADDRESS="$HOST" \
        RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia" RABBITMQ_LOG_BASE="$RMQ_DIR/log" \
        RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins" \
        RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf" RABBITMQ_PID_FILE="$RMQ_DIR/rabbit.pid" \
        ERL_CRASH_DUMP="$RMQ_DIR/erl_crash.dump" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rabbitmqctl_() { /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RMQ_NODE" "$@"; }

amqp_handshake() {  # AMQP 0-9-1: the server answers the protocol header with a method frame (type 1)
    local first
    first="$(timeout 5 bash -c "exec 3<>/dev/tcp/$HOST/$AMQP_PORT; printf 'AMQP\\x00\\x00\\x09\\x01' >&3; head -c 1 <&3" 2>/dev/null \
        | od -An -tx1 | tr -d ' \n')" || return 1
    [ "$first" = "01" ]
}

rabbitmq_start() {
    if port_answers "$AMQP_PORT"; then echo "already-running"; return 0; fi
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || die "RabbitMQ not installed (apt-get install rabbitmq-server)"
    [ "$(id -u)" -eq 0 ] || die "starting RabbitMQ this way needs root (it runs as root from $RMQ_DIR)"
    if port_answers "$RABBITMQ_DIST_PORT"; then
        die "Erlang distribution port $RABBITMQ_DIST_PORT is taken; set SIMPUL_RABBITMQ_DIST_PORT"
    fi
    mkdir -p "$RMQ_DIR/log" "$RMQ_DIR/mnesia"
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = $HOST:$AMQP_PORT
# A nearly full disk would otherwise block every publisher.
disk_free_limit.absolute = 50MB
log.console = false
loopback_users.guest = true
EOF
    echo '[].' >"$RMQ_DIR/enabled_plugins"
    : >"$RMQ_DIR/rabbitmq-env.conf"
    rabbitmq_env
    log "==> rabbitmq: starting node $RMQ_NODE on $HOST:$AMQP_PORT"
    setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$RMQ_DIR/stdout.log" 2>&1 </dev/null &
    local wrapper=$!
    echo "$wrapper" >"$RMQ_DIR/wrapper.pid"
    # Watch the wrapper too: a node that crashes at boot (e.g. duplicate_node_name) would leave
    # await_startup hanging until its timeout.
    await_started RabbitMQ "$wrapper" "$RMQ_DIR/stdout.log" "$AMQP_PORT" port_answers "$AMQP_PORT"
    rabbitmqctl_ await_startup --timeout "$START_TIMEOUT" >/dev/null 2>&1 \
        || { show_log_tail "$RMQ_DIR/stdout.log"; die "rabbitmqctl await_startup failed for $RMQ_NODE"; }
    amqp_handshake || die "RabbitMQ on $HOST:$AMQP_PORT does not answer an AMQP handshake"
    echo "started"
}

rabbitmq_stop() {
    local wrapper; wrapper="$(pid_in "$RMQ_DIR/wrapper.pid")"
    if ! pid_alive "$wrapper"; then echo "not-ours"; return 0; fi
    rabbitmq_env
    rabbitmqctl_ shutdown >/dev/null 2>&1 || kill "$wrapper" 2>/dev/null || true
    wait_pid_gone "$wrapper" || { kill -KILL "$wrapper" 2>/dev/null || true; }
    rm -f "$RMQ_DIR/wrapper.pid"
    # epmd is started by the first node and stays behind; end it only when no node uses it.
    if command -v epmd >/dev/null 2>&1 && ! epmd -names 2>/dev/null | grep -q '^name '; then
        epmd -kill >/dev/null 2>&1 || true
    fi
    echo "stopped"
}

rabbitmq_status() { report_status "$RMQ_DIR/wrapper.pid" amqp_handshake; }

# ---------------------------------------------------------------- Orthanc (not started by default)
orthanc_ready() { curl -sf -o /dev/null "http://$HOST:$ORTHANC_HTTP_PORT/system"; }

orthanc_start() {
    if port_answers "$ORTHANC_HTTP_PORT"; then echo "already-running"; return 0; fi
    [ -x /usr/sbin/Orthanc ] || die "Orthanc not installed (apt-get install orthanc orthanc-dicomweb)"
    local plugins=/usr/share/orthanc/plugins
    mkdir -p "$ORTHANC_DIR/db" "$ORTHANC_DIR/log" "$ORTHANC_DIR/worklists"
    cat >"$ORTHANC_DIR/orthanc.json" <<EOF
{
  "Name": "SIMPUL-TEST",
  "StorageDirectory": "$ORTHANC_DIR/db",
  "IndexDirectory": "$ORTHANC_DIR/db",
  "Plugins": ["$plugins/libOrthancDicomWeb.so", "$plugins/libModalityWorklists.so"],
  "HttpPort": $ORTHANC_HTTP_PORT,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "DicomAet": "ORTHANC",
  "DicomPort": $ORTHANC_DICOM_PORT,
  "DicomCheckCalledAet": false,
  "DicomAlwaysAllowEcho": true,
  "DicomAlwaysAllowStore": true,
  "DicomAlwaysAllowFind": true,
  "DicomAlwaysAllowFindWorklist": true,
  "UnknownSopClassAccepted": true,
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/", "Host": "$HOST:$ORTHANC_HTTP_PORT", "Ssl": false},
  "Worklists": {"Enable": true, "Database": "$ORTHANC_DIR/worklists"}
}
EOF
    log "==> orthanc: starting on $HOST:$ORTHANC_HTTP_PORT (DICOM $ORTHANC_DICOM_PORT)"
    setsid /usr/sbin/Orthanc --logdir="$ORTHANC_DIR/log" "$ORTHANC_DIR/orthanc.json" \
        >"$ORTHANC_DIR/stdout.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$ORTHANC_DIR/orthanc.pid"
    await_started Orthanc "$pid" "$ORTHANC_DIR/stdout.log" "$ORTHANC_HTTP_PORT" orthanc_ready
    echo "started"
}

orthanc_stop() {
    local pid; pid="$(pid_in "$ORTHANC_DIR/orthanc.pid")"
    if ! pid_alive "$pid"; then echo "not-ours"; return 0; fi
    kill "$pid"
    # A restart before the old process is gone fails with "SQLite: database is locked".
    wait_pid_gone "$pid" || die "Orthanc (pid $pid) did not stop"
    rm -f "$ORTHANC_DIR/orthanc.pid"
    echo "stopped"
}

orthanc_status() { report_status "$ORTHANC_DIR/orthanc.pid" orthanc_ready; }

# ---------------------------------------------------------------- main
service_port() {
    case "$1" in
        postgres) echo "$PG_PORT" ;;
        rabbitmq) echo "$AMQP_PORT" ;;
        orthanc) echo "$ORTHANC_HTTP_PORT" ;;
    esac
}

main() {
    local action="${1:-}"
    [ $# -gt 0 ] && shift
    case "$action" in start|stop|status) ;; *)
        die "usage: services.sh start|stop|status [postgres] [rabbitmq] [orthanc]" ;;
    esac
    local services=("$@")
    [ ${#services[@]} -eq 0 ] && services=(postgres rabbitmq)
    local service result summary=""
    for service in "${services[@]}"; do
        case "$service" in postgres|rabbitmq|orthanc) ;; *)
            die "unknown service '$service' (known: postgres rabbitmq orthanc)" ;;
        esac
    done
    for service in "${services[@]}"; do
        result="$("${service}_${action}")"
        summary+=" $service=$result($HOST:$(service_port "$service"))"
    done
    echo "services:$summary"
}

main "$@"
