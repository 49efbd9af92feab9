#!/usr/bin/env bash
# Set up (first run: .venv + pip install -e .) and run Simpul with the example channels on the
# embedded store (SQLite under var/); no other service is needed. Re-runs skip pip unless
# pyproject.toml changed. Stop with Ctrl-C.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh

ensure_venv ""
# The console has no default user: on the first run, ask for the first admin's password here
# (or set SIMPUL_ADMIN_USER and SIMPUL_ADMIN_PASSWORD; without either the engine refuses to start).
if [ -z "${SIMPUL_ADMIN_USER:-}" ] && [ -t 0 ] && \
        ! .venv/bin/simpul users list -c config/simpul.yaml | awk '$2 == "admin" && $4 == "enabled" {found=1} END {exit !found}'; then
    echo "No console admin yet. Creating user 'admin' (log in at http://127.0.0.1:8080/console/):"
    .venv/bin/simpul users create admin --admin -c config/simpul.yaml
fi
exec .venv/bin/simpul run -c config/simpul.yaml
