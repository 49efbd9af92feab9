"""Smoke run of bench/ingest.py: both servers get driven and the table reports real throughput."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\s*(?P<conns>\d+)\s+(?P<server>simpul|baseline)\s+(?P<rate>\d+)\s+"
                 r"(?P<p50>[\d.]+)\s+(?P<p95>[\d.]+)\s+(?P<p99>[\d.]+)\s+(?P<failed>\d+)\s*$")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_quick_benchmark_prints_a_table_with_throughput_for_both_servers() -> None:
    completed = subprocess.run([sys.executable, str(REPO / "bench" / "ingest.py"), "--quick", "--levels", "1,10"],
                               cwd=REPO, capture_output=True, text=True, timeout=170, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stdout + completed.stderr

    rows = [match.groupdict() for line in completed.stdout.splitlines() if (match := ROW.match(line))]
    seen = {(row["server"], int(row["conns"])) for row in rows}
    assert seen == {("simpul", 1), ("simpul", 10), ("baseline", 1), ("baseline", 10)}, completed.stdout
    for row in rows:
        assert int(row["rate"]) > 0, row
        assert int(row["failed"]) == 0, row
        assert 0 < float(row["p50"]) <= float(row["p95"]) <= float(row["p99"]), row
    assert "ratio simpul/baseline" in completed.stdout
    assert re.search(r"(PASS|FAIL)\s+p50 ACK latency <= 1 ms at 1 connection", completed.stdout)


def test_bad_levels_argument_is_a_clear_error_not_a_traceback() -> None:
    completed = subprocess.run([sys.executable, str(REPO / "bench" / "ingest.py"), "--levels", "ten"],
                               cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert completed.returncode == 2
    assert "--levels must be comma-separated integers" in completed.stderr
    assert "Traceback" not in completed.stderr
