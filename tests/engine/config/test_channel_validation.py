"""Channel YAML errors point at file:line:col and name the key, the way `simpul validate` prints them."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from simpul.engine.config.channels import load_channels

VALID = """\
name: lab
source:
  mllp:
    port: 2575
filter:
  message_types: [ORU^R01]
destinations:
  - label: fhir
    fhir_server:
      base_url: ${FHIR_BASE}
    retry:
      max_attempts: 3
"""


def findings_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent(text))
    _, findings = load_channels([path], environ=environ if environ is not None else {"FHIR_BASE": "http://x"},
                                relative_to=tmp_path)
    return [str(f) for f in findings]


def test_valid_channel_has_no_findings(tmp_path):
    assert findings_for(tmp_path, VALID) == []


def test_value_out_of_range_points_at_the_value(tmp_path):
    text = VALID.replace("max_attempts: 3", "max_attempts: 0")
    assert findings_for(tmp_path, text) == ["lab.yaml:12:7 destinations[0].retry.max_attempts: must be >= 1"]


def test_unknown_key_suggests_the_close_one(tmp_path):
    text = VALID.replace("    retry:", "    retyr:")
    assert findings_for(tmp_path, text) == [
        "lab.yaml:11:5 destinations[0].retyr: unknown key (did you mean 'retry'?)"]


def test_unknown_connector_suggests_the_close_one(tmp_path):
    text = VALID.replace("fhir_server:", "fhir_sever:")
    found = findings_for(tmp_path, text)
    assert "lab.yaml:9:5 destinations[0].fhir_sever: unknown key (did you mean 'fhir_server'?)" in found


def test_missing_required_key_points_at_the_mapping_that_lacks_it(tmp_path):
    text = VALID.replace("    port: 2575\n", "    host: 0.0.0.0\n")
    assert findings_for(tmp_path, text) == ["lab.yaml:3:3 source.mllp.port: required key is missing"]


def test_wrong_type_names_the_key(tmp_path):
    text = VALID.replace("port: 2575", "port: lots")
    [finding] = findings_for(tmp_path, text)
    assert finding.startswith("lab.yaml:4:5 source.mllp.port: must be a valid integer")


def test_duplicate_key_is_an_error_not_a_silent_override(tmp_path):
    text = VALID.replace("name: lab\n", "name: lab\nname: lab2\n")
    [finding] = findings_for(tmp_path, text)
    assert finding.startswith("lab.yaml:2:1 name: duplicate key")


def test_missing_environment_variable_is_named(tmp_path):
    assert findings_for(tmp_path, VALID, environ={}) == [
        "lab.yaml:10:17 destinations[0].fhir_server.base_url: environment variable FHIR_BASE is not set"]


def test_default_after_colon_dash_is_used_when_the_variable_is_unset(tmp_path):
    text = VALID.replace("${FHIR_BASE}", "${FHIR_BASE:-http://localhost:8081/fhir}")
    assert findings_for(tmp_path, text, environ={}) == []


def test_invalid_filter_expression_is_reported_with_the_reason(tmp_path):
    text = VALID.replace("  message_types: [ORU^R01]\n", "  expression: \"__import__('os')\"\n")
    [finding] = findings_for(tmp_path, text)
    assert finding.startswith("lab.yaml:6:3 filter.expression:") and "not allowed" in finding


def test_yaml_syntax_error_has_a_position(tmp_path):
    [finding] = findings_for(tmp_path, "name: lab\nsource: [unclosed\n")
    assert finding.startswith("lab.yaml:") and "invalid YAML" in finding


def test_two_connectors_in_one_destination_is_refused(tmp_path):
    text = VALID.replace("    retry:", "    file: {directory: out}\n    retry:")
    [finding] = findings_for(tmp_path, text)
    assert "exactly one connector" in finding and finding.startswith("lab.yaml:8:")


def test_duplicate_destination_labels_in_one_channel(tmp_path):
    text = VALID + "  - label: fhir\n    file: {directory: out}\n"
    [finding] = findings_for(tmp_path, text)
    assert finding.startswith("lab.yaml:") and "destinations: " in finding
    assert "destination label 'fhir' is used twice" in finding


def test_duplicate_channel_names_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)
    _, findings = load_channels([tmp_path], environ={"FHIR_BASE": "http://x"}, relative_to=tmp_path)
    assert [str(f) for f in findings] == ["b.yaml:1:1 name: channel name 'lab' is also used in a.yaml"]


def test_shared_port_must_have_the_same_listener_settings(tmp_path):
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID.replace("name: lab", "name: lab2").replace(
        "    port: 2575", "    port: 2575\n    max_connections: 5"))
    _, findings = load_channels([tmp_path], environ={"FHIR_BASE": "http://x"}, relative_to=tmp_path)
    assert len(findings) == 1 and "port 2575 is shared with a.yaml" in str(findings[0])


@pytest.mark.parametrize("value, reason", [("5 minutes", "must be a duration"), ("-1s", "must be a duration")])
def test_bad_durations(tmp_path, value, reason):
    text = VALID.replace("max_attempts: 3", f"max_attempts: 3\n      max_delay: {value}")
    [finding] = findings_for(tmp_path, text)
    assert "destinations[0].retry.max_delay" in finding and reason in finding
