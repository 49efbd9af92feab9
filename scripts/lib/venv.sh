# Sourced by scripts/run.sh and scripts/test.sh: make .venv and install the project into it.
#
# ensure_venv EXTRAS   (EXTRAS: "" for the engine alone, "test" for the test suite)
#
# pip runs only when pyproject.toml differs from the one the last install of those extras saw:
# the sha256 of pyproject.toml is kept in .venv/.simpul-installed-<extras>, so a re-run costs a
# hash and a file read. Must be called from the repository root.

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The Python that builds the venv: $SIMPUL_PYTHON, else python3 (3.11+ required by pyproject.toml).
_pick_python() {
    local candidate="${SIMPUL_PYTHON:-python3}"
    command -v "$candidate" >/dev/null 2>&1 || die "$candidate not found; install Python 3.11+ (Debian 12: apt-get install python3)"
    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$candidate is $("$candidate" -V 2>&1); Simpul needs Python 3.11 or newer"
    printf '%s' "$candidate"
}

# Debian ships ensurepip separately (package python3-venv); without it `python3 -m venv` fails or
# leaves a venv with no pip. Install it when we are allowed to, otherwise say what is missing.
_install_python3_venv() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "'python3 -m venv' does not work here; install the venv module (Debian: apt-get install python3-venv)"
    fi
    log "==> installing python3-venv (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q update </dev/null >&2 \
        || die "apt-get update failed; cannot install python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends \
        python3-venv </dev/null >&2 || die "apt-get install python3-venv failed"
}

_create_venv() {
    local python="$1"
    log "==> creating .venv with $("$python" -V 2>&1)"
    if "$python" -c 'import venv, ensurepip' >/dev/null 2>&1 && "$python" -m venv .venv >&2; then
        return 0
    fi
    rm -rf .venv    # a half-made venv (no pip) would pass the -x check on the next run
    _install_python3_venv
    "$python" -m venv .venv >&2 || { rm -rf .venv; die "'$python -m venv .venv' failed even with python3-venv installed"; }
}

_stamp_path() { printf '.venv/.simpul-installed-%s' "${1:-base}"; }

ensure_venv() {
    local extras="$1" python digest stamp target
    if [ ! -x .venv/bin/python ]; then
        _create_venv "$(_pick_python)"
    fi
    .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die ".venv uses $(.venv/bin/python -V 2>&1); remove .venv and re-run with Python 3.11+"

    digest="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    stamp="$(_stamp_path "$extras")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
        return 0
    fi
    target="."
    [ -n "$extras" ] && target=".[$extras]"
    if [ -f "$stamp" ]; then
        log "==> pip install -e '$target' (pyproject.toml changed since the last install)"
    else
        log "==> pip install -e '$target' (first install)"
    fi
    .venv/bin/python -m pip install --disable-pip-version-check -q -e "$target" >&2 \
        || die "pip install -e '$target' failed (see the pip output above)"
    printf '%s\n' "$digest" > "$stamp"
    # The test extras include the engine itself, so the plain install is current too.
    [ -n "$extras" ] && printf '%s\n' "$digest" > "$(_stamp_path "")"
    return 0
}
