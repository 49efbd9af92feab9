"""Collect the resources of an outbound order from a Bundle, one resource, or a dict of resources.

Accepted input (the `bundle_or_resources` of build_orm_o01 / build_oml_o21):
- a Bundle of any type; entries are found by fullUrl, by `Type/id` and by absolute `.../Type/id`;
- one ServiceRequest, with the other resources `contained` (`#id` references);
- a dict of resource type -> resource (or list of resources), e.g. {"ServiceRequest": sr, "Patient": pt}.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simpul.errors import MappingError


@dataclass
class Located:
    """A resource with the FHIRPath-like place it came from (for error messages)."""

    resource: dict[str, Any]
    path: str


@dataclass
class OrderInputs:
    located: list[Located] = field(default_factory=list)
    by_reference: dict[str, Located] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[Located]:
        return [item for item in self.located if item.resource.get("resourceType") == resource_type]

    def resolve(self, reference: dict[str, Any] | None, owner: Located) -> Located | None:
        """Reference -> the resource it names in the input, or None (contained `#id` looked up in owner)."""
        target = (reference or {}).get("reference")
        if not isinstance(target, str) or not target:
            return None
        if target.startswith("#"):
            for index, contained in enumerate(owner.resource.get("contained") or []):
                if isinstance(contained, dict) and contained.get("id") == target[1:]:
                    return Located(contained, f"{owner.path}.contained[{index}]")
            return None
        found = self.by_reference.get(target)
        if found is None and "/_history/" in target:
            found = self.by_reference.get(target.split("/_history/")[0])
        if found is None and target.count("/") >= 2:  # absolute URL: match on its Type/id tail
            found = self.by_reference.get("/".join(target.rstrip("/").split("/")[-2:]))
        return found


def collect(bundle_or_resources: Any) -> OrderInputs:
    if not isinstance(bundle_or_resources, dict):
        raise MappingError("input must be a FHIR Bundle, a resource or a dict of resources")
    inputs = OrderInputs()
    source = bundle_or_resources
    if source.get("resourceType") == "Bundle":
        entries = source.get("entry") or []
        if not isinstance(entries, list):
            raise MappingError("Bundle.entry: must be a list")
        for index, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict):
                _add(inputs, resource, f"Bundle.entry[{index}].resource", entry.get("fullUrl"))
    elif "resourceType" in source:
        _add(inputs, source, str(source["resourceType"]), None)
        for index, contained in enumerate(source.get("contained") or []):
            if isinstance(contained, dict):
                _add(inputs, contained, f"{source['resourceType']}.contained[{index}]", None)
    else:
        for resource_type, value in source.items():
            items = value if isinstance(value, list) else [value]
            for index, resource in enumerate(items):
                if not isinstance(resource, dict):
                    raise MappingError(f"{resource_type}[{index}]: must be a resource object")
                resource = {"resourceType": resource_type, **resource}
                _add(inputs, resource, f"{resource_type}[{index}]" if isinstance(value, list)
                     else resource_type, None)
    return inputs


def _add(inputs: OrderInputs, resource: dict[str, Any], path: str, full_url: Any) -> None:
    if not isinstance(resource.get("resourceType"), str):
        raise MappingError(f"{path}: resource has no resourceType")
    item = Located(resource, path)
    inputs.located.append(item)
    if isinstance(full_url, str) and full_url:
        inputs.by_reference[full_url] = item
        tail = "/".join(full_url.rstrip("/").split("/")[-2:])
        if not full_url.startswith("urn:"):
            inputs.by_reference.setdefault(tail, item)
    if isinstance(resource.get("id"), str):
        inputs.by_reference.setdefault(f"{resource['resourceType']}/{resource['id']}", item)
