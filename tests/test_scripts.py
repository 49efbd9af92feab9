"""scripts/test.sh and scripts/lib/venv.sh as a newcomer meets them: the right words on the first
install, and on a system without apt a package list with instructions instead of a half setup."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ensure_venv(workdir: Path) -> str:
    """Run `ensure_venv test` in `workdir` (whose .venv/bin/python is a stub); its stderr."""
    done = subprocess.run(["bash", "-c", f"source {ROOT / 'scripts/lib/venv.sh'}; ensure_venv test"], cwd=workdir,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_first_install_says_first_install_and_a_change_says_changed(tmp_path: Path) -> None:
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    # Stands in for the venv's Python: the version check and `pip install` both succeed.
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / ".venv" / ".simpul-installed-base").write_text("an older install of the engine alone\n")

    first = _ensure_venv(tmp_path)
    assert "first install" in first and "changed" not in first
    assert _ensure_venv(tmp_path) == ""                                  # nothing to do
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '2'\n")
    assert "pyproject.toml changed" in _ensure_venv(tmp_path)


def test_without_apt_it_lists_the_packages_and_how_to_install_them_then_stops(tmp_path: Path) -> None:
    # A PATH with the basic tools but neither apt-get nor dpkg-query, as on Fedora or macOS.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "cat", "id", "sha256sum", "cut", "printf", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    done = subprocess.run(["bash", str(ROOT / "scripts" / "test.sh")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/")})
    assert done.returncode == 1
    assert "no apt-get" in done.stderr
    assert "postgresql postgresql-client rabbitmq-server orthanc orthanc-dicomweb chromium" in done.stderr
    assert "SIMPUL_SKIP_APT=1 bash scripts/test.sh" in done.stderr
    for unused in ("haproxy",):
        assert unused not in done.stderr
    assert "pip install" not in done.stderr and "creating .venv" not in done.stderr   # stopped before setup
