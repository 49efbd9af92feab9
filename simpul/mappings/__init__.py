"""HL7v2 -> FHIR R4 mappings.

    mapping = load_mapping("v2_to_fhir", base_dir=channel_file.parent)
    bundle = mapping.map(text)        # one transaction Bundle as plain dicts

See docs/mappings/ for the map rules, analyst modules and YAML overrides.
"""
from simpul.mappings.loader import Mapping, load_mapping
from simpul.mappings.options import MappingSpec

__all__ = ["Mapping", "MappingSpec", "load_mapping"]
