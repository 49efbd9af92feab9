"""Public API: load_mapping, MappingSpec, analyst modules, errors without patient data."""
from __future__ import annotations

import pathlib

import pytest

from simpul.errors import ConfigError, MappingError, UnsupportedMessageType
from simpul.mappings import MappingSpec, load_mapping
from tests.mappings.conftest import MSH, check_bundle, msg, resources

ADT = msg(MSH.format(type="ADT^A01^ADT_A01"), "PID|1||RM1^^^RSUD^MR||Secretname^Budi", "PV1|1|I|W1^1^A")


def test_string_spec_equals_default_spec(tmp_path: pathlib.Path) -> None:
    assert MappingSpec.model_validate({"builtin": "v2_to_fhir"}) == MappingSpec()
    a = load_mapping("v2_to_fhir", base_dir=tmp_path).map(ADT)
    b = load_mapping(MappingSpec(), base_dir=tmp_path).map(ADT)
    c = load_mapping(None, base_dir=tmp_path).map(ADT)
    assert a == b == c


def test_unknown_builtin_suggests_the_right_name(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'v2_to_fhir'"):
        load_mapping("v2_to_fhr", base_dir=tmp_path)


def test_spec_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError):
        MappingSpec.model_validate({"builtin": "v2_to_fhir", "modul": "x.py"})


def test_analyst_module_transforms_the_bundle(tmp_path: pathlib.Path) -> None:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "tag.py").write_text(
        "def transform(message, bundle):\n"
        "    for e in bundle['entry']:\n"
        "        if e['resource']['resourceType'] == 'Patient':\n"
        "            e['resource']['active'] = message.one('PV1').text(2) == 'I'\n"
        "    return bundle\n")
    mapping = load_mapping(MappingSpec(module="maps/tag.py"), base_dir=tmp_path)
    bundle = mapping.map(ADT)
    check_bundle(bundle)
    assert resources(bundle, "Patient")[0]["active"] is True


@pytest.mark.parametrize("source, problem", [
    (None, "is not a .py file"),
    ("raise RuntimeError('boom')\n", "failed to import"),
    ("x = 1\n", "defines no transform"),
])
def test_broken_analyst_module_is_a_config_error(tmp_path: pathlib.Path, source: str | None, problem: str) -> None:
    if source is not None:
        (tmp_path / "m.py").write_text(source)
    with pytest.raises(ConfigError, match=problem):
        load_mapping(MappingSpec(module="m.py"), base_dir=tmp_path)


def test_transform_that_returns_nothing_is_a_mapping_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "m.py").write_text("def transform(message, bundle):\n    bundle['entry'] = []\n")
    with pytest.raises(MappingError, match="did not return a Bundle"):
        load_mapping(MappingSpec(module="m.py"), base_dir=tmp_path).map(ADT)


def test_unsupported_type_names_the_type(tmp_path: pathlib.Path) -> None:
    with pytest.raises(UnsupportedMessageType) as info:
        load_mapping("v2_to_fhir", base_dir=tmp_path).map(msg(MSH.format(type="RDE^O11"), "PID|1||1"))
    assert "RDE^O11" in str(info.value) and (info.value.segment, info.value.field) == ("MSH", 9)


def test_mapping_error_carries_no_patient_data(tmp_path: pathlib.Path) -> None:
    with pytest.raises(MappingError) as info:
        load_mapping("v2_to_fhir", base_dir=tmp_path).map(msg(MSH.format(type="ADT^A01"), "PV1|1|I|Secretname"))
    assert info.value.segment == "PID" and "Secretname" not in str(info.value)


def test_validate_option_checks_output(tmp_path: pathlib.Path) -> None:
    (tmp_path / "bad.py").write_text(
        "def transform(message, bundle):\n"
        "    for e in bundle['entry']:\n"
        "        if e['resource']['resourceType'] == 'Patient':\n"
        "            e['resource']['birthDate'] = 'yesterday'\n"
        "    return bundle\n")
    spec = MappingSpec.model_validate({"module": "bad.py", "validate": True})
    with pytest.raises(MappingError, match="validation failed"):
        load_mapping(spec, base_dir=tmp_path).map(ADT)


def test_drop_segments_and_z_segment_policy(tmp_path: pathlib.Path) -> None:
    text = msg(MSH.format(type="ADT^A01^ADT_A01"), "PID|1||RM1^^^RSUD^MR||Doe", "PV1|1|I", "ZPI|1|custom")
    kept = load_mapping("v2_to_fhir", base_dir=tmp_path).map(text)
    prov = resources(kept, "Provenance")[0]
    assert {"url": "https://simpul.dev/fhir/StructureDefinition/v2-z-segment", "valueString": "ZPI|1|custom"} \
        in prov["extension"]
    dropped = load_mapping(MappingSpec(z_segments="drop", drop_segments=["PV1"]), base_dir=tmp_path).map(text)
    assert not resources(dropped, "Encounter")
    assert all("v2-z-segment" not in x["url"] for x in resources(dropped, "Provenance")[0]["extension"])
