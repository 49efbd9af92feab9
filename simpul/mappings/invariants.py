"""FHIR R4 invariants (the FHIRPath constraints of the specification), checked on what we emit.

fhir.resources checks structure (types, cardinality, required elements) but not the invariants,
and a FHIR server rejects a resource that breaks one (a booked Appointment without start/end
breaks app-3). The table below holds the invariants of every resource type the maps emit and of
the datatypes they use, each written as a FHIRPath expression that must be true, and evaluated
with fhirpathpy (a maintained FHIRPath engine) against its R4 model, so `ofType(Period)` finds
every Period wherever it sits. Keys and meaning follow the R4 definitions; the expressions are
written for fhirpathpy (which lacks hasValue(): `exists()` stands in for it on primitives).

Best-practice invariants (dom-6 narrative) and those about elements we never emit are left out.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from simpul.errors import MappingError

# (key, resource type or "*" for all, FHIRPath that must hold, what it means)
INVARIANTS: tuple[tuple[str, str, str, str], ...] = (
    # DomainResource and datatypes: any resource
    ("dom-2", "*", "contained.contained.empty()", "contained resources do not contain others"),
    ("ext-1", "*", "descendants().ofType(Extension).all(extension.exists() != value.exists())",
     "an extension has either extensions or a value, not both"),
    ("per-1", "*", "descendants().ofType(Period).all(start.empty() or end.empty() or (start <= end))",
     "a Period does not end before it starts"),
    ("rng-2", "*", "descendants().ofType(Range).all(low.empty() or high.empty() or (low.value <= high.value))",
     "a Range's low is not above its high"),
    ("qty-3", "*", "descendants().ofType(Quantity).all(code.empty() or system.exists())",
     "a Quantity with a unit code names its system"),
    ("att-1", "*", "descendants().ofType(Attachment).all(data.empty() or contentType.exists())",
     "an Attachment with data has a contentType"),
    ("cpt-2", "*", "descendants().ofType(ContactPoint).all(value.empty() or system.exists())",
     "a ContactPoint with a value has a system"),
    ("rat-1", "*", "descendants().ofType(Ratio).all((numerator.empty() xor denominator.exists()) "
                   "and (numerator.exists() or extension.exists()))",
     "a Ratio has both numerator and denominator, or neither"),
    # Resources
    ("pat-1", "Patient", "contact.all(name.exists() or telecom.exists() or address.exists() "
                         "or organization.exists())", "a contact names a person or an organization"),
    ("obs-6", "Observation", "dataAbsentReason.empty() or value.empty()",
     "dataAbsentReason only when there is no value"),
    ("obs-7", "Observation", "value.empty() or component.code.where(coding.intersect(%resource.code.coding)"
                             ".exists()).empty()", "no component repeats the code of an Observation with a value"),
    ("obs-3", "Observation", "referenceRange.all(low.exists() or high.exists() or text.exists())",
     "a reference range has a low, a high or a text"),
    ("sqty-1", "Observation", "referenceRange.all(low.comparator.empty() and high.comparator.empty())",
     "reference range bounds are simple quantities (no comparator)"),
    ("app-2", "Appointment", "start.exists() = end.exists()", "start and end come together"),
    ("app-3", "Appointment", "(start.exists() and end.exists()) or "
                             "(status in ('proposed' | 'cancelled' | 'waitlist'))",
     "only proposed, cancelled or waitlisted appointments lack start and end"),
    ("app-4", "Appointment", "cancelationReason.exists() implies (status = 'noshow' or status = 'cancelled')",
     "a cancelation reason only on cancelled or no-show appointments"),
    ("con-4", "Condition", "abatement.empty() or clinicalStatus.coding.where(system = "
                           "'http://terminology.hl7.org/CodeSystem/condition-clinical' and (code = 'resolved' "
                           "or code = 'remission' or code = 'inactive')).exists()",
     "an abated condition is resolved, in remission or inactive"),
    ("con-5", "Condition", "verificationStatus.coding.where(system = "
                           "'http://terminology.hl7.org/CodeSystem/condition-ver-status' and "
                           "code = 'entered-in-error').empty() or clinicalStatus.empty()",
     "an entered-in-error condition has no clinical status"),
    ("ait-1", "AllergyIntolerance", "verificationStatus.coding.where(system = "
                                    "'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification' and "
                                    "code = 'entered-in-error').exists() or clinicalStatus.exists()",
     "clinicalStatus is present unless entered in error"),
    ("ait-2", "AllergyIntolerance", "verificationStatus.coding.where(system = "
                                    "'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification' and "
                                    "code = 'entered-in-error').empty() or clinicalStatus.empty()",
     "an entered-in-error allergy has no clinical status"),
    ("prr-1", "ServiceRequest", "orderDetail.empty() or code.exists()", "order details only with a code"),
    ("org-1", "Organization", "(identifier.count() + name.count()) > 0", "an organization has a name or an identifier"),
    ("org-2", "Organization", "address.all(use != 'home')", "an organization address is not a home address"),
    ("org-3", "Organization", "telecom.all(use != 'home')", "an organization telecom is not a home one"),
    ("bdl-3", "Bundle", "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' "
                        "or %resource.type = 'history'))", "transaction entries carry a request"),
    ("bdl-5", "Bundle", "entry.all(resource.exists() or request.exists() or response.exists())",
     "an entry has a resource, a request or a response"),
    ("bdl-7", "Bundle", "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl).isDistinct()",
     "fullUrls are unique"),
)


@lru_cache(maxsize=1)
def _compiled() -> dict[str, list[tuple[str, str, Callable[..., Any]]]]:
    # Heavy optional dependency (an ANTLR parser): imported only when invariants are checked.
    import fhirpathpy
    from fhirpathpy.models import models

    model = models["r4"]
    table: dict[str, list[tuple[str, str, Callable[..., Any]]]] = {}
    for key, rtype, expression, meaning in INVARIANTS:
        table.setdefault(rtype, []).append((key, meaning, fhirpathpy.compile(expression, model)))
    return table


def broken_invariants(resource: dict[str, Any]) -> list[str]:
    """Keys of the invariants `resource` breaks ("app-3: only proposed, ... lack start and end")."""
    table = _compiled()
    rtype = resource.get("resourceType", "")
    out = []
    for key, meaning, check in table.get(rtype, []) + (table["*"] if rtype != "Bundle" else []):
        try:
            result = check(resource, {"resource": resource})
        except Exception:  # noqa: BLE001 - an expression fhirpathpy cannot evaluate is not a finding
            continue
        if result and result[0] is False:
            out.append(f"{key}: {meaning}")
    return out


def bundle_findings(bundle: dict[str, Any]) -> list[str]:
    """Every broken invariant of a Bundle and its resources, as `Type(entry n) key: meaning`."""
    findings = [f"Bundle {f}" for f in broken_invariants({**bundle, "entry": [
        {k: v for k, v in e.items() if k != "resource"} | {"resource": {}} for e in bundle.get("entry", [])]})]
    for i, entry in enumerate(bundle.get("entry", [])):
        resource = entry.get("resource") or {}
        findings += [f"{resource.get('resourceType')}(entry {i}) {f}" for f in broken_invariants(resource)]
    return findings


def check_invariants(bundle: dict[str, Any]) -> None:
    """Raise MappingError naming the broken invariants (keys and resource types; never values)."""
    findings = bundle_findings(bundle)
    if findings:
        raise MappingError("FHIR invariants broken: " + "; ".join(findings[:5]))
