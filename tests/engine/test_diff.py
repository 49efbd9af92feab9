"""`simpul diff`: the running and the edited mapping of a channel over the same messages, compared
resource by resource and field by field."""
from __future__ import annotations

from pathlib import Path

from tests.engine.test_cli import simpul, simpul_async
from tests.helpers import EngineHarness, free_port, send_one, write_settings

CHANNEL = """name: lab
source: {{mllp: {{host: 127.0.0.1, port: {port}}}}}
filter: {{message_types: ["ORU^R01"]}}
mapping: {mapping}
destinations:
  - label: out
    file: {{directory: {out}}}
"""


def oru(control_id: str) -> bytes:
    # MSH-7 without an offset: the running channel (no zone) keeps dates; the edited one sets +07:00.
    return ("\r".join([f"MSH|^~\\&|LIS|LAB|HUB|RSUD|20240115090000||ORU^R01|{control_id}|P|2.5.1",
                       "PID|1||RM-1^^^RSUD^MR||Santoso^Budi",
                       "OBR|1|P-1|F-1|2345-7^Glucose^LN|||20240115073000",
                       "OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|70-110||||F"]) + "\r").encode()


def setup(tmp_path: Path, port: int, database_url: str) -> tuple[Path, Path]:
    channels = tmp_path / "channels"
    channels.mkdir(exist_ok=True)
    (channels / "lab.yaml").write_text(CHANNEL.format(port=port, mapping="v2_to_fhir", out=tmp_path / "out"))
    edited = tmp_path / "edited.yaml"
    edited.write_text(CHANNEL.format(port=port, out=tmp_path / "out",
                                     mapping="{builtin: v2_to_fhir, default_timezone: '+07:00'}"))
    settings = write_settings(tmp_path, database_url, http_port=0, channels_dir=channels)
    return settings, edited


def test_diff_over_a_folder_shows_each_changed_field_and_a_summary(tmp_path: Path, sqlite_url: str) -> None:
    settings, edited = setup(tmp_path, free_port(), sqlite_url)
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "a.hl7").write_bytes(oru("D-1"))
    result = simpul("diff", str(edited), "--folder", str(samples), "-c", str(settings), cwd=tmp_path)
    assert result.code == 1, result.err
    assert 'DiagnosticReport[0].effectiveDateTime: "2024-01-15" -> "2024-01-15T07:30:00+07:00"' in result.out
    assert "Provenance[0]" in result.out  # MSH-7 now has a zone: a Provenance is added
    last = result.out.strip().splitlines()[-1]
    assert last.startswith("1 message: 1 changed, 0 unchanged, 0 newly failing")
    same = simpul("diff", str(tmp_path / "channels" / "lab.yaml"), "--folder", str(samples), "-c", str(settings),
                  cwd=tmp_path)
    assert same.code == 0 and same.out.strip().endswith("0 fields changed, 0 resources added, 0 removed")


async def test_diff_runs_the_channels_last_stored_messages(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()
    settings, edited = setup(tmp_path, port, sqlite_url)
    harness = EngineHarness(tmp_path, sqlite_url)
    await harness.start()
    try:
        for i in range(3):
            await send_one(port, oru(f"S-{i}"))
        await harness.wait_for(lambda: len(harness.sql("SELECT id FROM messages WHERE status='routed'")) == 3)
    finally:
        await harness.stop()
    result = await simpul_async("diff", str(edited), "--last", "2", "-c", str(settings), cwd=tmp_path)
    assert result.code == 1, result.err
    assert "ORU^R01 S-1" in result.out and "ORU^R01 S-2" in result.out and "S-0" not in result.out
    assert result.out.strip().splitlines()[-1].startswith("2 messages: 2 changed")
