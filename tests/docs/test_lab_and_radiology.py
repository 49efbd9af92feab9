"""The channel examples of the Lab and radiology page are valid channel files, one per loop.

(The page is not among the ones tests/docs/test_examples.py runs against an engine: its channels
talk to a LIS, RIS and PACS that are not there. The loops themselves run in
tests/engine/test_lab_loop.py and tests/engine/test_radiology_loop.py.)"""
from __future__ import annotations

import re
from pathlib import Path

from simpul.engine.config.channels import load_channels

PAGE = Path(__file__).resolve().parents[2] / "docs" / "lab-and-radiology.md"
EXAMPLE = re.compile(r"<!-- example: ([a-z-]+) -->\n```yaml\n(.*?)```", re.DOTALL)


def test_every_loop_has_a_valid_channel_example(tmp_path: Path) -> None:
    examples = EXAMPLE.findall(PAGE.read_text(encoding="utf-8"))
    names = [name for name, _ in examples]
    assert names == ["lab-orders", "lab-results", "lab-events", "radiology-orders", "radiology-reports",
                     "lab-order-events"]
    for name, text in examples:
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        loaded, findings = load_channels([path], environ={"FHIR_BASE": "http://fhir.example/fhir",
                                                                 "RABBITMQ_URL": "amqp://u:p@mq/"})
        assert findings == [], f"{name}: {[str(f) for f in findings]}"
        assert len(loaded) == 1
    radiology = load_channels([tmp_path / "radiology-orders.yaml"], environ={"FHIR_BASE": "http://f/fhir"})[0][0]
    assert [d.connector_name for d in radiology.channel.destinations] == ["mllp", "worklist", "dicomweb",
                                                                          "fhir_server"]
