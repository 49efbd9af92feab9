"""FHIR R4 invariants (the FHIRPath constraints of the specification), checked on what we emit.

fhir.resources checks structure (types, cardinality, required elements) but not the invariants,
and a FHIR server rejects a resource that breaks one (a booked Appointment without start/end
breaks app-3). The constraints are the official R4 (4.0.1) set, read from the StructureDefinitions
by scripts/extract_r4_constraints.py into vocab/r4_constraints.json (source and version recorded
there): those of every resource type the maps emit, of the Bundle, and of every complex datatype.

How they are applied: the resource's JSON is walked with the element types of the definitions, so
every instance gets the constraints of its element path (Patient.contact -> pat-1) and of its
datatype (each Period -> per-1, each Reference -> ref-1, each SimpleQuantity -> sqty-1 and qty-3).
Each expression is compiled once and evaluated with fhirpathpy on that instance, with %resource
bound to the resource. ele-1 ("every element has a value or children") is checked in Python on the
JSON itself (no null, "", {} or []): the same rule, without a FHIRPath call per element.

Severity error must hold; a warning is reported by `findings` but never refuses a Bundle. The few
constraints fhirpathpy cannot evaluate are listed in UNEVALUATED with the reason; any other
expression that fails to evaluate is a finding, so a new gap is noticed, not silently skipped.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources as package_files
from typing import Any, Callable, NamedTuple

from simpul.errors import MappingError

# Constraints not evaluated, with why. tests/mappings/test_invariants.py keeps this list exact.
UNEVALUATED: dict[str, str] = {
    "dom-3": "fhirpathpy raises on its descendants()...as(canonical) step (every contained resource "
             "is referenced); the maps never emit contained resources",
    "txt-1": "htmlChecks() (XHTML rules of the narrative) is not implemented in fhirpathpy",
    "txt-2": "htmlChecks() (narrative has non-whitespace content) is not implemented in fhirpathpy",
}

# Official expressions fhirpathpy mis-evaluates, evaluated in an equivalent form (kept exact by a test).
REWRITTEN: dict[str, tuple[str, str]] = {
    "rng-2": ("low.empty() or high.empty() or (low.value <= high.value)",
              "fhirpathpy compares only UCUM Quantities; the maps give low and high one unit (OBX-6)"),
}


class Constraint(NamedTuple):
    key: str
    severity: str
    human: str
    path: str
    check: Callable[..., Any]


def _has_value(inputs: list[Any]) -> list[bool]:
    # FHIRPath hasValue(): one primitive with an actual value (fhirpathpy does not implement it).
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))]


def _no_trace(*_args: Any) -> None:
    # ref-1 calls trace(); fhirpathpy would print the traced values (PHI) to stdout.
    return None


_OPTIONS = {"userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}}, "traceFn": _no_trace}


@lru_cache(maxsize=1)
def definitions() -> dict[str, Any]:
    """The generated data file: source, constraints per resource and datatype, element types."""
    text = package_files.files("simpul.mappings").joinpath("vocab/r4_constraints.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


class _Model(NamedTuple):
    by_path: dict[str, list[Constraint]]           # element path or datatype name -> constraints
    children: dict[tuple[str, str], tuple[str, str]]  # (parent path, JSON key) -> (element path, type)
    datatypes: frozenset[str]
    bases: dict[str, str]
    node: Callable[[Any, str], Any]                # fhirpathpy's typed node for an element instance


@lru_cache(maxsize=1)
def _model() -> _Model:
    # Heavy optional dependency (an ANTLR parser): imported only when invariants are checked.
    import fhirpathpy
    from fhirpathpy.engine.nodes import ResourceNode
    from fhirpathpy.models import models

    fp_model = models["r4"]
    data = definitions()
    by_path: dict[str, list[Constraint]] = {}

    def add(c: dict[str, str], path: str) -> None:
        if c["key"] in UNEVALUATED or c["key"] == "ele-1":
            return
        expression = REWRITTEN[c["key"]][0] if c["key"] in REWRITTEN else c["expression"]
        check = fhirpathpy.compile(expression, fp_model, _OPTIONS)
        by_path.setdefault(path, []).append(Constraint(c["key"], c["severity"], c["human"], path, check))

    for constraints in data["resources"].values():
        for c in constraints:
            add(c, c["path"])
    for dt, constraints in data["datatypes"].items():
        for c in constraints:
            # A profile's root path is its base type's (SimpleQuantity -> "Quantity"): key by name.
            add(c, dt + c["path"][len(c["path"].split(".")[0]):])
    children: dict[tuple[str, str], tuple[str, str]] = {}
    for path, types in data["elements"].items():
        parent, name = path.rsplit(".", 1)
        if name.endswith("[x]"):
            for t in types:
                json_type = data["bases"].get(t, t) if t in ("SimpleQuantity", "MoneyQuantity") else t
                children[(parent, name[:-3] + json_type[0].upper() + json_type[1:])] = (path, t)
        elif types:
            children[(parent, name)] = (path, types[0])
    return _Model(by_path, children, frozenset(data["datatypes"]), data["bases"], ResourceNode.create_node)


def _element_gaps(value: Any) -> bool:
    """True when the JSON holds an element without value or children (ele-1): null, "", {} or []."""
    if value is None or value == "" or value == {} or value == []:
        return True
    if isinstance(value, dict):
        return any(_element_gaps(v) for k, v in value.items() if k != "resourceType")
    if isinstance(value, list):
        return any(_element_gaps(v) for v in value)
    return False


def _without_primitive_extensions(value: Any) -> Any:
    # fhirpathpy mis-reads a primitive that has a "_name" sibling (status = 'x' is false, `in`
    # raises); the extensions are walked (ext-1) from the original, FHIRPath sees the values only.
    if isinstance(value, dict):
        return {k: _without_primitive_extensions(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_without_primitive_extensions(v) for v in value]
    return value


class _Walk:
    def __init__(self, resource: dict[str, Any]) -> None:
        self.model = _model()
        self.resource = _without_primitive_extensions(resource)
        self.original = resource
        self.out: list[tuple[str, str, str]] = []   # (severity, key, text)

    def run(self) -> list[tuple[str, str, str]]:
        if _element_gaps(self.original):
            self.out.append(("error", "ele-1", "All FHIR elements must have a @value or children"))
        rtype = str(self.resource.get("resourceType", ""))
        if rtype not in definitions()["resources"]:
            # Not silently "valid": add the type to EMITTED in scripts/extract_r4_constraints.py.
            self.out.append(("warning", "no-definitions", f"no R4 constraints loaded for {rtype}"))
        self._instance(self.original, rtype, rtype, root=True)
        return self.out

    def _evaluate(self, constraints: list[Constraint], node: Any, type_path: str, root: bool) -> None:
        if root:
            target: Any = self.resource
        else:
            target = self.model.node(_without_primitive_extensions(node), type_path)
        for c in constraints:
            try:
                result = c.check(target, {"resource": self.resource, "rootResource": self.resource})
            except Exception:  # noqa: BLE001 - reported, so a gap in fhirpathpy is never silent
                self.out.append((c.severity, c.key, f"{c.human} (could not be evaluated)"))
                continue
            if result and result[0] is False:
                self.out.append((c.severity, c.key, c.human))

    def _instance(self, node: Any, path: str, type_path: str, root: bool = False) -> None:
        """Check one instance at element `path` and walk its children."""
        if not isinstance(node, dict):
            return
        model = self.model
        self._evaluate(model.by_path.get(path, []), node, type_path, root)
        if path in model.datatypes:
            base = model.bases.get(path)
            while base in model.datatypes and base not in ("BackboneElement", "Element"):
                self._evaluate(model.by_path.get(base, []), node, type_path, root)
                base = model.bases.get(base)
            if path in ("SimpleQuantity", "MoneyQuantity"):
                path = model.bases[path]    # their elements are Quantity's
        for key, value in node.items():
            if key.startswith("_"):     # a primitive's id and extensions: check those extensions
                for element in value if isinstance(value, list) else [value]:
                    for extension in element.get("extension", []) if isinstance(element, dict) else []:
                        self._instance(extension, "Extension", "Extension")
                continue
            found = model.children.get((path, key))
            if found is None:
                continue
            child_path, ctype = found
            if ctype.startswith("#"):
                child_path, ctype = ctype[1:], "BackboneElement"
            for item in value if isinstance(value, list) else [value]:
                if ctype in ("BackboneElement", "Element"):
                    self._instance(item, child_path, child_path)
                elif ctype in model.datatypes:
                    self._instance(item, ctype, ctype)
                elif ctype == "Resource" and isinstance(item, dict) and path != "Bundle.entry":
                    # A contained resource (Bundle entries are checked one by one in bundle_checks).
                    self.out += _Walk(item).run()


def findings(resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every constraint `resource` breaks, as (severity, key, meaning), errors and warnings."""
    return _Walk(resource).run()


def broken_invariants(resource: dict[str, Any]) -> list[str]:
    """Keys of the error constraints `resource` breaks ("app-3: Either start and end are ...")."""
    return sorted({f"{key}: {human}" for severity, key, human in findings(resource) if severity == "error"})


def bundle_checks(bundle: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every constraint a Bundle and its resources break: (severity, key, "Type(entry n) key: meaning")."""
    # The Bundle's own constraints see a stand-in per entry resource; each resource is checked below.
    stand_in = {"resourceType": "Basic"}
    stub = {**bundle, "entry": [{k: v for k, v in e.items() if k != "resource"} | {"resource": stand_in}
                                for e in bundle.get("entry", [])]}
    out = [(severity, key, f"Bundle {key}: {human}") for severity, key, human in findings(stub)]
    for i, entry in enumerate(bundle.get("entry", [])):
        resource = entry.get("resource") or {}
        out += [(severity, key, f"{resource.get('resourceType')}(entry {i}) {key}: {human}")
                for severity, key, human in findings(resource)]
    return sorted(set(out), key=out.index)


def bundle_findings(bundle: dict[str, Any]) -> list[str]:
    """Every error-severity invariant a Bundle and its resources break: `Type(entry n) key: meaning`."""
    return [text for severity, _key, text in bundle_checks(bundle) if severity == "error"]


def check_invariants(bundle: dict[str, Any]) -> None:
    """Raise MappingError naming the broken invariants (keys and resource types; never values)."""
    broken = bundle_findings(bundle)
    if broken:
        raise MappingError("FHIR invariants broken: " + "; ".join(broken[:5]))
