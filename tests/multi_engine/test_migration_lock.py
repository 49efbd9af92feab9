"""Several processes migrating one empty database at once: all succeed, the schema is built once."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from simpul.store.migrate import alembic_config
from tests.helpers import SIMPUL_CLI, free_port, store_rows, write_settings
from alembic.script import ScriptDirectory


@pytest.mark.slow
def test_four_simpul_migrate_started_together_on_an_empty_database_all_succeed(
        tmp_path: Path, database_url: str) -> None:
    settings = write_settings(tmp_path, database_url, http_port=free_port())
    (tmp_path / "channels").mkdir()
    processes = [subprocess.Popen([str(SIMPUL_CLI), "migrate", "-c", str(settings)], cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    results = [(process.wait(60), process.stderr.read().decode() if process.stderr else "")
               for process in processes]
    for process in processes:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert [code for code, _ in results] == [0, 0, 0, 0], [err[-1500:] for _, err in results]
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert [tuple(row) for row in store_rows(database_url, "SELECT version_num FROM alembic_version")] == [(head,)]
