#!/usr/bin/env bash
# Set up (first run: .venv + pip install -e .) and run Simpul with the example channels on the
# embedded store (SQLite under var/); no other service is needed. Re-runs skip pip unless
# pyproject.toml changed. Stop with Ctrl-C.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh

ensure_venv ""
exec .venv/bin/simpul run -c config/simpul.yaml
