"""The engine-level default_timezone (config/simpul.yaml) reaches every channel whose mapping sets none."""
from __future__ import annotations

from pathlib import Path

import orjson

from simpul.engine.channel_runtime import ChannelRuntime
from simpul.engine.config.channels import load_channels
from simpul.engine.config.settings import load_settings

CHANNEL = """name: {name}
source: {{mllp: {{port: 0}}}}
mapping: {mapping}
destinations:
  - label: out
    file: {{directory: out}}
"""
# No offset anywhere, MSH-7 included: only a configured zone can keep the time.
ORU = ("MSH|^~\\&|LIS|LAB|HUB|RSUD|20240115090000||ORU^R01|TZ-2|P|2.5.1\r"
       "PID|1||RM-1^^^RSUD^MR||Santoso^Budi\r"
       "OBR|1|P-1|F-1|24331-1^Lipid panel^LN|||20240115073000\r")


def test_engine_default_timezone_applies_unless_the_channel_sets_its_own(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "simpul.yaml").write_text("default_timezone: '+07:00'\n")
    channels = tmp_path / "channels"
    channels.mkdir()
    (channels / "a.yaml").write_text(CHANNEL.format(name="plain", mapping="v2_to_fhir"))
    (channels / "b.yaml").write_text(CHANNEL.format(name="own", mapping="{builtin: v2_to_fhir, default_timezone: '+09:00'}"))
    settings = load_settings(tmp_path / "config" / "simpul.yaml")
    assert settings.default_timezone == "+07:00"
    loaded, findings = load_channels([settings.channels_path()])
    assert not findings
    starts = {}
    for item in loaded:
        runtime = ChannelRuntime(item.channel, item.path, default_timezone=settings.default_timezone)
        bundle = orjson.loads(runtime.map(ORU))
        report = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport")
        starts[item.channel.name] = report["effectiveDateTime"]
    assert starts == {"plain": "2024-01-15T07:30:00+07:00", "own": "2024-01-15T07:30:00+09:00"}
