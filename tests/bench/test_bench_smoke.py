"""Smoke run of bench/benchmark.py --quick: every part runs and the report carries every figure.

No figure is asserted (CI machines differ); the run must finish, ACK correctly, store and deliver
what it acknowledged (exit code 0), and print each section with its bare references.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARK = REPO / "bench" / "benchmark.py"
INGEST_ROW = re.compile(r"^\s*(?P<conns>\d+)\s+(?P<server>bare-c|bare-ack|bare-commit|simpul)\s+(?P<rate>\d+)\s+"
                        r"(?P<p50>[\d.]+)\s+(?P<p95>[\d.]+)\s+(?P<p99>[\d.]+)\s+(?P<failed>\d+)\s", re.M)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_quick_benchmark_reports_ingest_sustained_claims_and_targets(tmp_path: Path) -> None:
    result_file = tmp_path / "result.json"
    completed = subprocess.run([sys.executable, str(BENCHMARK), "--quick", "--levels", "1,10", "--scenarios", "file",
                                "--json", str(result_file)],
                               cwd=REPO, capture_output=True, text=True, timeout=400, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    out = completed.stdout

    rows = [match.groupdict() for match in INGEST_ROW.finditer(out)]
    seen = {(row["server"], int(row["conns"])) for row in rows}
    assert {("simpul", 1), ("simpul", 10), ("bare-ack", 10), ("bare-commit", 1), ("bare-commit", 10)} <= seen, out
    for row in rows:
        assert int(row["rate"]) > 0 and int(row["failed"]) == 0, row

    result = json.loads(result_file.read_text())
    [sustained] = result["sustained"]
    assert sustained["scenario"] == "file" and sustained["drive"]["acked"] > 0
    assert sustained["delivered"]["delivered"] == sustained["delivered"]["received"] > 0
    assert set(sustained["cpu_us_per_msg"]) == {"ingest", "map", "deliver"}
    assert sum(sustained["peak_rss_mb"].values()) > 0
    assert {(claim["keys"], claim["waiting"]) for claim in result["claims"]} == {
        ("many", 10), ("many", 2000), ("one", 10), ("one", 2000)}
    assert "== Sustained: open loop" in out and "== Claim latency" in out
    assert re.search(r"^(MET|MISSED)\s+ACK p50 at 1 connection <= 1.3x bare commit-then-ACK: .*\[bare ", out, re.M)
    assert re.search(r"^(MET|MISSED)\s+>= 2,500 msg/s sustained to the file destination", out, re.M)


def test_bad_arguments_are_a_clear_error_not_a_traceback() -> None:
    for arguments, message in ((["--levels", "ten"], "--levels and --claim-sizes must be comma-separated integers"),
                               (["--scenarios", "fast"], "unknown scenario(s) fast"),
                               (["--database", "mysql://x"], "--database must be a postgresql:// URL")):
        completed = subprocess.run([sys.executable, str(BENCHMARK), *arguments], cwd=REPO, capture_output=True,
                                   text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert completed.returncode == 2, arguments
        assert message in completed.stderr
        assert "Traceback" not in completed.stderr
