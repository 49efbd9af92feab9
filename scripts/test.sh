#!/usr/bin/env bash
# Set up everything the test suite needs, then run it: `bash scripts/test.sh [pytest args]`.
#
#  1. apt: install what is missing of the system packages below (skipped when all are present).
#  2. .venv + pip install -e '.[test]' (skipped when pyproject.toml is unchanged since the last install).
#  3. PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672 unless their ports already answer
#     (scripts/services.sh), and the database simpul_test owned by postgres.
#  4. .venv/bin/python -m pytest "$@" from the repository root; its exit code is ours
#     (5, "no tests collected", counts as a failure too).
#
# Exports for the tests: SIMPUL_TEST_POSTGRES_URL, SIMPUL_TEST_AMQP_URL.
# Knobs: SIMPUL_PG_PORT / SIMPUL_AMQP_PORT / SIMPUL_SERVICES_DIR (see scripts/services.sh),
# SIMPUL_SKIP_APT=1 (never call apt), SIMPUL_STOP_SERVICES=1 (stop the services this run
# started once pytest ends; the default when CI=true).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh

# What the suite uses: the PostgreSQL server (store tests), its client (psql, below), RabbitMQ
# (started for the tests by scripts/services.sh), Orthanc with its DICOMweb plugin (the PACS and
# worklist SCP of the radiology tests, which start their own instance on free ports:
# tests/orthanc.py) and Chromium (the console's browser tests drive it with Playwright; no
# `playwright install`), and a C compiler for the benchmark's load driver (tests/bench). Each
# later connector adds its own.
SYSTEM_PACKAGES=(postgresql postgresql-client rabbitmq-server orthanc orthanc-dicomweb chromium gcc)
PG_PORT="${SIMPUL_PG_PORT:-5432}"
AMQP_PORT="${SIMPUL_AMQP_PORT:-5672}"
TEST_DATABASE=simpul_test

package_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# Without apt: say what to install and how, then stop (nothing is half set up).
no_apt_help() {
    log "error: this system has no apt-get, and these Debian packages are not installed: $*"
    log ""
    log "Install the same software with your package manager, start nothing (the tests start their own"
    log "servers on 127.0.0.1), then run again with SIMPUL_SKIP_APT=1:"
    log "  postgresql, postgresql-client  PostgreSQL server and psql (e.g. dnf install postgresql-server postgresql;"
    log "                                 brew install postgresql)"
    log "  rabbitmq-server                RabbitMQ (e.g. dnf install rabbitmq-server; brew install rabbitmq)"
    log "  orthanc, orthanc-dicomweb      Orthanc PACS with DICOMweb and its worklist plugin (orthancteam builds)"
    log "  chromium                       the browser of the console tests (e.g. dnf install chromium;"
    log "                                 the tests look for /usr/bin/chromium and skip without it)"
    log "  gcc                            a C compiler for the benchmark's load driver (e.g. dnf install gcc;"
    log "                                 xcode-select --install)"
    log ""
    log "  SIMPUL_SKIP_APT=1 bash scripts/test.sh"
}

install_system_packages() {
    local missing=() package
    for package in "${SYSTEM_PACKAGES[@]}"; do
        package_installed "$package" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "${SIMPUL_SKIP_APT:-0}" = 1 ]; then
        log "==> SIMPUL_SKIP_APT=1: not installing missing packages: ${missing[*]}"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        no_apt_help "${missing[@]}"
        exit 1
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing system packages (${missing[*]}); run as root or install them"
        sudo=(sudo)
    fi
    log "==> apt: installing ${missing[*]}"
    # Package scripts would start the system PostgreSQL/RabbitMQ/Orthanc and take 5432/5672/8042
    # with their own auth; a policy-rc.d that answers 101 forbids that while apt runs.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        created_policy=1
        # Interrupted apt must not leave the machine unable to start services for good.
        trap "${sudo[*]:-} rm -f $policy" EXIT
    fi
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
    local status=0
    "${apt[@]}" update </dev/null >&2 || status=$?
    if [ "$status" -eq 0 ]; then
        "${apt[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null >&2 || status=$?
    fi
    if [ "$created_policy" = 1 ]; then
        "${sudo[@]}" rm -f "$policy"
        trap - EXIT
    fi
    [ "$status" -eq 0 ] || die "apt-get failed (exit $status) while installing: ${missing[*]}"
}

ensure_test_database() {
    local psql=(psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
    local exists
    exists="$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$TEST_DATABASE'" </dev/null)" \
        || die "cannot connect to PostgreSQL as postgres@127.0.0.1:$PG_PORT without a password (tests need trust auth on loopback)"
    if [ "$exists" != 1 ]; then
        "${psql[@]}" -c "CREATE DATABASE $TEST_DATABASE OWNER postgres" </dev/null \
            || die "could not create database $TEST_DATABASE"
        log "==> created database $TEST_DATABASE"
    fi
}

install_system_packages
ensure_venv test

summary="$(bash scripts/services.sh start postgres rabbitmq)" || die "could not start the test services"
ensure_test_database

export SIMPUL_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/$TEST_DATABASE"
export SIMPUL_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
echo "$summary"

status=0
.venv/bin/python -m pytest "$@" || status=$?

stop_default=0
[ "${CI:-}" = true ] && stop_default=1
if [ "${SIMPUL_STOP_SERVICES:-$stop_default}" = 1 ]; then
    started=()
    for service in postgres rabbitmq; do
        [[ "$summary" == *" $service=started"* ]] && started+=("$service")
    done
    if [ ${#started[@]} -gt 0 ]; then
        bash scripts/services.sh stop "${started[@]}" >/dev/null || log "warning: could not stop ${started[*]}"
    fi
fi

echo "$summary"
if [ "$status" -eq 5 ]; then
    log "error: pytest collected no tests (exit 5); that counts as a failure"
fi
exit "$status"
