"""A FHIR R4 server simulator on loopback, for tests that need a real FHIR endpoint.

No FHIR server runs on the test machines, so this fake stands in for one. It speaks real HTTP on
127.0.0.1 (port 0, read back into `.base_url`) and follows the FHIR R4 RESTful API for what it
implements; where the spec leaves a choice, it copies what HAPI FHIR does and says so.

Features
    - `POST [base]` with a Bundle of type `transaction` (all-or-nothing) or `batch` (entry by entry):
      POST (create, `request.ifNoneExist` conditional create), PUT `Type/id` (update, or create with that
      id), PUT `Type?search` (conditional update: 0 matches create, 1 updates, more answer 412),
      DELETE `Type/id` and `Type?search`, GET. Entries run in the spec's order (DELETE, POST, PUT, GET).
    - `urn:uuid:` fullUrls: every `reference` that names another entry's fullUrl is rewritten to the
      final `Type/id`; an unresolved `urn:uuid:` reference fails the transaction with 400. Conditional
      references (`Patient?identifier=s|v`) resolve by search and must match exactly one resource.
    - Referential integrity (HAPI's default): a relative reference `Type/id` must name a stored
      resource once the transaction is done, else 400.
    - An update whose content equals the stored version keeps the version (HAPI's no-op detection),
      so replaying a Bundle changes nothing a client can see.
    - Direct interactions: `GET [base]/Type/id`, `GET [base]/Type?identifier=system|value&_id=...`
      (searchset Bundle), `GET [base]/metadata` (CapabilityStatement), `POST [base]/Type`,
      `PUT [base]/Type/id`, `PUT [base]/Type?search`, `DELETE [base]/Type/id`.
    - Search parameters: `identifier` (token: `system|value`, `value`, `|value`, `system|`, comma = OR)
      and `_id`. Any other parameter answers 400, as HAPI does with `Prefer: handling=strict`,
      because silently ignoring it would make a conditional update match everything.
    - `validate=True` checks each written resource against the fhir.resources R4B models and answers
      400 with one OperationOutcome issue per finding.

Fault injection (for connector tests)
    `fail_next(n, status=503)`, `reject_next(n, reason)` (whatever request comes next),
    `fail_identifier(value, status)` / `reject_identifier(value, reason)` / `clear_identifier(value)`
    (every request carrying a resource with that identifier value, e.g. one patient's MRN, until
    cleared; the others are served), `delay(seconds)` (the request is processed,
    then the answer is held back, so a client that times out has still changed the server: the case
    that makes retries need conditional interactions), `stop()` / `start()` (closes the listening
    socket and every open connection, then listens again on the same port).

Inspection
    `requests` (every request received, faulted or not), `resources(type)` (current versions),
    `history(type, id)`.

Lifecycle
    `with FakeFhirServer() as fhir:` starts a server thread and stops it on exit. The pytest fixture
    `fhir_server` does the same per test, with `validate=True`. All public methods are thread-safe,
    so async tests can use the same object (its blocking calls return in milliseconds).
"""
from __future__ import annotations

import copy
import datetime
import http
import json
import re
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

FHIR_JSON = "application/fhir+json"
BASE_PATH = "/fhir"

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_RESOURCE_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_SUPPORTED_SEARCH_PARAMETERS = {"identifier", "_id"}
# Result parameters a client may send that do not change which resources match.
_IGNORED_SEARCH_PARAMETERS = {"_count", "_format", "_pretty", "_summary", "_total"}
# FHIR R4 3.1.0.11.2 (transaction processing rules): deletes, then creates, then updates, then reads.
_METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}


# --------------------------------------------------------------------------------------------------
# OperationOutcome and errors


@dataclass
class OutcomeIssue:
    """One OperationOutcome.issue: `code` is from the FHIR issue-type value set."""

    code: str
    diagnostics: str
    expression: str | None = None
    severity: str = "error"

    def as_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code,
                                 "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


def operation_outcome(issues: list[OutcomeIssue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [issue.as_json() for issue in issues]}


class FhirHttpError(Exception):
    """An interaction refused with an HTTP status and an OperationOutcome (internal to the fake)."""

    def __init__(self, status: int, code: str, diagnostics: str, expression: str | None = None,
                 issues: list[OutcomeIssue] | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.issues = issues or [OutcomeIssue(code, diagnostics, expression)]

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def status_line(status: int) -> str:
    """Bundle.entry.response.status text, e.g. "201 Created"."""
    return f"{status} {http.HTTPStatus(status).phrase}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------------
# Searching


def parse_search(query: str, expression: str) -> list[tuple[str, str]]:
    """Split a search query into (parameter, value) pairs; unsupported parameters answer 400."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    criteria: list[tuple[str, str]] = []
    for name, value in pairs:
        if name in _IGNORED_SEARCH_PARAMETERS:
            continue
        if name not in _SUPPORTED_SEARCH_PARAMETERS:
            raise FhirHttpError(400, "not-supported",
                                f"search parameter '{name}' is not supported by this server "
                                f"(supported: identifier, _id)", expression)
        criteria.append((name, value))
    if not criteria:
        raise FhirHttpError(400, "invalid", "a conditional interaction needs at least one search "
                            "parameter", expression)
    return criteria


def _identifier_token_matches(resource: dict[str, Any], token: str) -> bool:
    identifiers = resource.get("identifier") or []
    if isinstance(identifiers, dict):  # a few resources have a single identifier (0..1)
        identifiers = [identifiers]
    for alternative in token.split(","):
        if "|" in alternative:
            system, value = alternative.split("|", 1)
            for identifier in identifiers:
                if system == "":
                    system_ok = "system" not in identifier  # "|value": identifiers with no system
                else:
                    system_ok = identifier.get("system") == system
                if system_ok and (value == "" or identifier.get("value") == value):
                    return True
        elif any(identifier.get("value") == alternative for identifier in identifiers):
            return True
    return False


def resource_matches(resource: dict[str, Any], criteria: list[tuple[str, str]]) -> bool:
    """True when the resource satisfies every (parameter, value) pair (AND across parameters)."""
    for name, value in criteria:
        if name == "_id":
            if resource.get("id") not in value.split(","):
                return False
        elif name == "identifier":
            if not _identifier_token_matches(resource, value):
                return False
    return True


# --------------------------------------------------------------------------------------------------
# Storage


@dataclass(frozen=True)
class StoredVersion:
    """One version of a resource; `resource` is None for a deletion."""

    version: int
    last_updated: str
    resource: dict[str, Any] | None


class ResourceStore:
    """Versioned resources keyed by (resourceType, id). Stored dicts are never mutated."""

    def __init__(self, histories: dict[tuple[str, str], list[StoredVersion]] | None = None) -> None:
        self.histories = histories if histories is not None else {}

    def copy(self) -> ResourceStore:
        """An isolated working copy: a transaction writes here and is swapped in only on success."""
        return ResourceStore({key: list(versions) for key, versions in self.histories.items()})

    def latest(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        versions = self.histories.get((resource_type, resource_id))
        return versions[-1] if versions else None

    def current(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        latest = self.latest(resource_type, resource_id)
        return latest.resource if latest else None

    def all_current(self, resource_type: str) -> list[dict[str, Any]]:
        return [versions[-1].resource for (rtype, _), versions in self.histories.items()
                if rtype == resource_type and versions[-1].resource is not None]

    def search(self, resource_type: str, criteria: list[tuple[str, str]]) -> list[dict[str, Any]]:
        return [r for r in self.all_current(resource_type) if resource_matches(r, criteria)]

    def write(self, resource: dict[str, Any]) -> tuple[StoredVersion, bool]:
        """Store a new version unless the content equals the current one; returns (version, changed)."""
        key = (resource["resourceType"], resource["id"])
        latest = self.latest(*key)
        if latest and latest.resource is not None and _content(latest.resource) == _content(resource):
            return latest, False
        version = (latest.version + 1) if latest else 1
        stored = copy.deepcopy(resource)
        last_updated = _now()
        meta = stored.setdefault("meta", {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = last_updated
        entry = StoredVersion(version, last_updated, stored)
        self.histories.setdefault(key, []).append(entry)
        return entry, True

    def delete(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        latest = self.latest(resource_type, resource_id)
        if latest is None or latest.resource is None:
            return None  # deleting what is not there succeeds and changes nothing
        entry = StoredVersion(latest.version + 1, _now(), None)
        self.histories[(resource_type, resource_id)].append(entry)
        return entry


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without the server-managed meta fields, for no-op update detection."""
    content = dict(resource)
    meta = {k: v for k, v in (content.pop("meta", None) or {}).items()
            if k not in ("versionId", "lastUpdated")}
    if meta:
        content["meta"] = meta
    return content


# --------------------------------------------------------------------------------------------------
# Resource checks


def _check_resource_type(resource_type: str, expression: str) -> None:
    if not _RESOURCE_TYPE.match(resource_type):
        raise FhirHttpError(400, "invalid", f"'{resource_type}' is not a resource type", expression)
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        model = None
    if model is None or not issubclass(model, Resource):
        raise FhirHttpError(404, "not-supported", f"unknown resource type '{resource_type}'",
                            expression)


def validate_with_r4b_models(resource: dict[str, Any], expression: str) -> list[OutcomeIssue]:
    """One OperationOutcome issue per pydantic finding of the fhir.resources R4B model."""
    import pydantic
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(resource["resourceType"])
    try:
        model.model_validate(resource)
    except pydantic.ValidationError as exc:
        issues = []
        for error in exc.errors():
            location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                               for part in error["loc"])
            issues.append(OutcomeIssue("structure", error["msg"],
                                       f"{resource['resourceType']}{location}"))
        return issues
    except (ValueError, TypeError) as exc:  # fhir_core raises plain errors for some checks
        return [OutcomeIssue("structure", str(exc).splitlines()[0], expression)]
    return []


def _iter_reference_holders(node: Any, path: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every dict with a string `reference` (a FHIR Reference), with its FHIRPath-like location."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node, path
        for key, value in node.items():
            yield from _iter_reference_holders(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _iter_reference_holders(item, f"{path}[{index}]")


# --------------------------------------------------------------------------------------------------
# Interactions


@dataclass
class _PlannedEntry:
    """An entry after its target identity is known and before anything is written."""

    index: int
    method: str
    resource_type: str
    resource_id: str | None = None
    resource: dict[str, Any] | None = None
    status: int = 200
    write: bool = False


class FhirInteractions:
    """The FHIR REST semantics, independent of HTTP. Every call runs under one lock."""

    def __init__(self, *, validate: bool = False, enforce_referential_integrity: bool = True) -> None:
        self.store = ResourceStore()
        self.validate = validate
        self.enforce_referential_integrity = enforce_referential_integrity
        self.lock = threading.RLock()

    # -- Bundle interactions ----------------------------------------------------------------------

    def process_bundle(self, bundle: Any) -> dict[str, Any]:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise FhirHttpError(400, "invalid", "POST to the base URL needs a Bundle resource",
                                "Bundle")
        bundle_type = bundle.get("type")
        entries = bundle.get("entry", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise FhirHttpError(400, "structure", "Bundle.entry must be a list of objects",
                                "Bundle.entry")
        if bundle_type == "transaction":
            with self.lock:
                working = self.store.copy()
                response = self._transaction(entries, working)
                self.store = working  # all-or-nothing: only a complete transaction is kept
                return response
        if bundle_type == "batch":
            return self._batch(entries)
        raise FhirHttpError(400, "invalid", "Bundle.type must be 'transaction' or 'batch' when "
                            "posted to the base URL", "Bundle.type")

    def _batch(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        response_entries = []
        for index, entry in enumerate(entries):
            with self.lock:
                working = self.store.copy()
                try:
                    # Batch entries are independent: the spec forbids references between them,
                    # so each runs as its own one-entry transaction and its urn:uuid stays unresolved.
                    one = self._transaction([entry], working, index_offset=index)
                except FhirHttpError as exc:
                    response_entries.append({"response": {"status": status_line(exc.status),
                                                          "outcome": exc.outcome()}})
                    continue
                self.store = working
                response_entries.append(one["entry"][0])
        return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "batch-response",
                "entry": response_entries}

    def _transaction(self, entries: list[dict[str, Any]], store: ResourceStore,
                     index_offset: int = 0) -> dict[str, Any]:
        planned: dict[int, _PlannedEntry] = {}
        full_urls: dict[str, int] = {}
        for position, entry in enumerate(entries):
            index = position + index_offset
            full_url = entry.get("fullUrl")
            if full_url is not None:
                if full_url in full_urls:
                    raise FhirHttpError(400, "invalid", f"fullUrl {full_url} appears twice",
                                        f"Bundle.entry[{index}].fullUrl")
                full_urls[full_url] = position

        order = sorted(range(len(entries)),
                       key=lambda p: _METHOD_ORDER.get(_method_of(entries[p], p + index_offset), 9))
        # Pass 1: decide each entry's target id (conditional searches see earlier entries' results).
        pending: list[dict[str, Any]] = []
        for position in order:
            planned[position] = self._plan(entries[position], position + index_offset, store, pending)

        # Pass 2: rewrite references, then write in processing order.
        id_for_full_url = {url: f"{planned[p].resource_type}/{planned[p].resource_id}"
                           for url, p in full_urls.items()
                           if planned[p].resource_id and planned[p].method in ("POST", "PUT")}
        for position in order:
            plan = planned[position]
            if plan.resource is not None and plan.method in ("POST", "PUT"):
                self._resolve_references(plan, id_for_full_url, store, pending)
        response_entries: dict[int, dict[str, Any]] = {}
        for position in order:
            response_entries[position] = self._apply(planned[position], store)

        if self.enforce_referential_integrity:
            self._check_referential_integrity(planned, store)
        return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "transaction-response",
                "entry": [response_entries[p] for p in range(len(entries))]}

    def _plan(self, entry: dict[str, Any], index: int, store: ResourceStore,
              pending: list[dict[str, Any]]) -> _PlannedEntry:
        where = f"Bundle.entry[{index}]"
        method = _method_of(entry, index)
        request = entry["request"]
        url = request.get("url")
        if not isinstance(url, str) or not url:
            raise FhirHttpError(400, "required", "request.url is required", f"{where}.request.url")
        path, _, query = url.partition("?")
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise FhirHttpError(400, "invalid", "request.url must start with a resource type",
                                f"{where}.request.url")
        resource_type = parts[0]
        _check_resource_type(resource_type, f"{where}.request.url")
        plan = _PlannedEntry(index, method, resource_type)

        resource = entry.get("resource")
        if method in ("POST", "PUT"):
            if not isinstance(resource, dict):
                raise FhirHttpError(400, "required", f"{method} entry needs a resource",
                                    f"{where}.resource")
            if "resourceType" not in resource:
                raise FhirHttpError(400, "required", "resource has no resourceType",
                                    f"{where}.resource")
            if resource["resourceType"] != resource_type:
                raise FhirHttpError(400, "invalid", f"resource is a {resource['resourceType']} but "
                                    f"request.url names {resource_type}", f"{where}.resource")
            plan.resource = copy.deepcopy(resource)

        def find(criteria: list[tuple[str, str]]) -> list[str]:
            found = {r["id"] for r in store.search(resource_type, criteria)}
            found |= {r["id"] for r in pending
                      if r["resourceType"] == resource_type and resource_matches(r, criteria)}
            return sorted(found)

        if method == "POST":
            if len(parts) != 1 or query:
                raise FhirHttpError(400, "invalid", "POST request.url must be just the resource "
                                    "type", f"{where}.request.url")
            if_none_exist = request.get("ifNoneExist")
            if isinstance(if_none_exist, str) and "?" in if_none_exist:
                if_none_exist = if_none_exist.split("?", 1)[1]  # tolerate "Type?query" as HAPI does
            matches = find(parse_search(if_none_exist, f"{where}.request.ifNoneExist")) \
                if if_none_exist else []
            if len(matches) > 1:
                raise FhirHttpError(412, "duplicate", f"ifNoneExist matches {len(matches)} "
                                    f"{resource_type} resources", f"{where}.request.ifNoneExist")
            if matches:  # conditional create found the resource: nothing is written (200 OK)
                plan.resource_id, plan.status = matches[0], 200
            else:
                plan.resource_id, plan.status, plan.write = str(uuid.uuid4()), 201, True
        elif method == "PUT":
            body_id = plan.resource.get("id") if plan.resource else None
            if query:
                if len(parts) != 1:
                    raise FhirHttpError(400, "invalid", "conditional update url is Type?search",
                                        f"{where}.request.url")
                matches = find(parse_search(query, f"{where}.request.url"))
                if len(matches) > 1:
                    raise FhirHttpError(412, "multiple-matches", f"conditional update matches "
                                        f"{len(matches)} {resource_type} resources",
                                        f"{where}.request.url")
                if matches and body_id and body_id != matches[0]:
                    raise FhirHttpError(400, "invalid", "resource id differs from the id of the "
                                        "resource the conditional update found", f"{where}.resource.id")
                if matches:
                    plan.resource_id = matches[0]
                else:
                    plan.resource_id = body_id or str(uuid.uuid4())
            else:
                if len(parts) != 2 or not _RESOURCE_ID.match(parts[1]):
                    raise FhirHttpError(400, "invalid", "PUT request.url must be Type/id or "
                                        "Type?search", f"{where}.request.url")
                if body_id is None:
                    raise FhirHttpError(400, "required", "an update needs resource.id equal to the "
                                        "id in request.url", f"{where}.resource.id")
                if body_id != parts[1]:
                    raise FhirHttpError(400, "invalid", "resource.id differs from the id in "
                                        "request.url", f"{where}.resource.id")
                plan.resource_id = parts[1]
            self._check_if_match(request, store, resource_type, plan.resource_id, where)
            plan.write = True
            plan.status = 200 if store.current(resource_type, plan.resource_id) else 201
        elif method == "DELETE":
            if query:
                matches = find(parse_search(query, f"{where}.request.url"))
                if len(matches) > 1:
                    raise FhirHttpError(412, "multiple-matches", f"conditional delete matches "
                                        f"{len(matches)} {resource_type} resources",
                                        f"{where}.request.url")
                plan.resource_id = matches[0] if matches else None
            elif len(parts) == 2:
                plan.resource_id = parts[1]
            else:
                raise FhirHttpError(400, "invalid", "DELETE request.url must be Type/id or "
                                    "Type?search", f"{where}.request.url")
            plan.status = 204
        else:  # GET / HEAD
            if len(parts) != 2 or query:
                raise FhirHttpError(400, "not-supported", "only read (Type/id) is supported for "
                                    "GET entries", f"{where}.request.url")
            plan.resource_id = parts[1]

        if plan.write and plan.resource is not None:
            plan.resource["id"] = plan.resource_id
            pending[:] = [r for r in pending
                          if (r["resourceType"], r["id"]) != (resource_type, plan.resource_id)]
            pending.append(plan.resource)
        return plan

    @staticmethod
    def _check_if_match(request: dict[str, Any], store: ResourceStore, resource_type: str,
                        resource_id: str | None, where: str) -> None:
        if_match = request.get("ifMatch")
        if not if_match or resource_id is None:
            return
        latest = store.latest(resource_type, resource_id)
        current = f'W/"{latest.version}"' if latest and latest.resource is not None else None
        if if_match != current:
            raise FhirHttpError(412, "conflict", "ifMatch does not name the current version",
                                f"{where}.request.ifMatch")

    def _resolve_references(self, plan: _PlannedEntry, id_for_full_url: dict[str, str],
                            store: ResourceStore, pending: list[dict[str, Any]]) -> None:
        assert plan.resource is not None
        base = f"Bundle.entry[{plan.index}].resource"
        for holder, path in _iter_reference_holders(plan.resource, base):
            reference = holder["reference"]
            if reference in id_for_full_url:
                holder["reference"] = id_for_full_url[reference]
            elif reference.startswith("urn:uuid:") or reference.startswith("urn:oid:"):
                raise FhirHttpError(400, "not-found", f"reference {reference} matches no fullUrl in "
                                    "the Bundle", f"{path}.reference")
            elif "?" in reference and not reference.startswith(("http:", "https:", "#")):
                # Conditional reference (FHIR R4 3.1.0.11.4): resolves only to exactly one match.
                target_type, _, query = reference.partition("?")
                _check_resource_type(target_type, f"{path}.reference")
                criteria = parse_search(query, f"{path}.reference")
                found = {r["id"] for r in store.search(target_type, criteria)}
                found |= {r["id"] for r in pending
                          if r["resourceType"] == target_type and resource_matches(r, criteria)}
                if len(found) != 1:
                    raise FhirHttpError(412 if found else 400, "not-found",
                                        f"conditional reference matches {len(found)} resources",
                                        f"{path}.reference")
                holder["reference"] = f"{target_type}/{found.pop()}"

    def _apply(self, plan: _PlannedEntry, store: ResourceStore) -> dict[str, Any]:
        where = f"Bundle.entry[{plan.index}]"
        if plan.method == "DELETE":
            if plan.resource_id is not None:
                store.delete(plan.resource_type, plan.resource_id)
            return {"response": {"status": status_line(204)}}
        if plan.method in ("GET", "HEAD"):
            latest = store.latest(plan.resource_type, plan.resource_id or "")
            if latest is None or latest.resource is None:
                raise FhirHttpError(404 if latest is None else 410, "not-found",
                                    f"{plan.resource_type}/{plan.resource_id} is not stored",
                                    f"{where}.request.url")
            return {"resource": copy.deepcopy(latest.resource),
                    "response": _entry_response(200, plan.resource_type, plan.resource_id or "",
                                                latest)}
        assert plan.resource_id is not None
        if plan.write:
            assert plan.resource is not None
            if self.validate:
                issues = validate_with_r4b_models(plan.resource, f"{where}.resource")
                if issues:
                    for issue in issues:  # point at the entry as well as the element
                        issue.expression = f"{where}.resource" + (issue.expression or "")[
                            len(plan.resource_type):]
                    raise FhirHttpError(400, "structure", "resource fails validation",
                                        issues=issues)
            stored, _ = store.write(plan.resource)
        else:
            stored_or_none = store.latest(plan.resource_type, plan.resource_id)
            assert stored_or_none is not None
            stored = stored_or_none
        return {"response": _entry_response(plan.status, plan.resource_type, plan.resource_id,
                                            stored)}

    def _check_referential_integrity(self, planned: dict[int, _PlannedEntry],
                                     store: ResourceStore) -> None:
        for plan in planned.values():
            if not plan.write or plan.resource is None:
                continue
            base = f"Bundle.entry[{plan.index}].resource"
            for holder, path in _iter_reference_holders(plan.resource, base):
                parts = holder["reference"].split("/")
                if len(parts) in (2, 4) and _RESOURCE_TYPE.match(parts[0]) and (
                        len(parts) == 2 or parts[2] == "_history"):
                    if store.current(parts[0], parts[1]) is None:
                        raise FhirHttpError(400, "not-found", f"reference {parts[0]}/{parts[1]} "
                                            "names no stored resource", f"{path}.reference")

    # -- direct interactions ----------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> tuple[dict[str, Any], StoredVersion]:
        _check_resource_type(resource_type, resource_type)
        with self.lock:
            latest = self.store.latest(resource_type, resource_id)
        if latest is None:
            raise FhirHttpError(404, "not-found", f"{resource_type}/{resource_id} is not known")
        if latest.resource is None:
            raise FhirHttpError(410, "deleted", f"{resource_type}/{resource_id} was deleted")
        return copy.deepcopy(latest.resource), latest

    def search(self, resource_type: str, query: str, base_url: str) -> dict[str, Any]:
        _check_resource_type(resource_type, resource_type)
        pairs = [(n, v) for n, v in urllib.parse.parse_qsl(query, keep_blank_values=True)
                 if n not in _IGNORED_SEARCH_PARAMETERS]
        with self.lock:
            if pairs:
                found = self.store.search(resource_type, parse_search(query, resource_type))
            else:
                found = self.store.all_current(resource_type)
            found = copy.deepcopy(found)
        return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset",
                "total": len(found),
                "link": [{"relation": "self", "url": f"{base_url}/{resource_type}"
                          + (f"?{query}" if query else "")}],
                "entry": [{"fullUrl": f"{base_url}/{resource_type}/{r['id']}", "resource": r,
                           "search": {"mode": "match"}} for r in found]}

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.store.all_current(resource_type))

    def history(self, resource_type: str, resource_id: str) -> list[StoredVersion]:
        with self.lock:
            return copy.deepcopy(self.store.histories.get((resource_type, resource_id), []))


def _method_of(entry: dict[str, Any], index: int) -> str:
    request = entry.get("request")
    if not isinstance(request, dict):
        raise FhirHttpError(400, "required", "entry.request is required in a transaction or batch",
                            f"Bundle.entry[{index}].request")
    method = request.get("method")
    if method not in _METHOD_ORDER:
        raise FhirHttpError(400, "not-supported" if method == "PATCH" else "invalid",
                            f"request.method {method!r} is not supported",
                            f"Bundle.entry[{index}].request.method")
    return method


def _entry_response(status: int, resource_type: str, resource_id: str,
                    stored: StoredVersion) -> dict[str, Any]:
    return {"status": status_line(status),
            "location": f"{resource_type}/{resource_id}/_history/{stored.version}",
            "etag": f'W/"{stored.version}"', "lastModified": stored.last_updated}


def capability_statement() -> dict[str, Any]:
    interactions = [{"code": c} for c in ("read", "update", "delete", "create", "search-type")]
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": _now()[:10],
        "kind": "instance", "fhirVersion": "4.0.1", "format": [FHIR_JSON, "json"],
        "software": {"name": "Simpul FakeFhirServer"},
        "implementation": {"description": "FHIR R4 simulator for Simpul's tests"},
        "rest": [{
            "mode": "server",
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
            "resource": [{"type": "Resource", "interaction": interactions,
                          "conditionalCreate": True, "conditionalUpdate": True,
                          "conditionalDelete": "single", "readHistory": False,
                          "searchParam": [{"name": "identifier", "type": "token"},
                                          {"name": "_id", "type": "token"}]}],
        }],
    }


# --------------------------------------------------------------------------------------------------
# HTTP


@dataclass
class RecordedRequest:
    """One request as the server received it; `status` is what it answered (0 if it never did)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Faults:
    fail_remaining: int = 0
    fail_status: int = 503
    reject_remaining: int = 0
    reject_reason: str = ""
    delay_seconds: float = 0.0
    # identifier value -> (status, diagnostics): every request whose resources carry it
    by_identifier: dict[str, tuple[int, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeFhirServer) -> None:
        self.fake = fake
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _FhirRequestHandler)


class _FhirRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real FHIR servers and httpx use it
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # tests read fake.requests instead of a log

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        fake = self.server.fake
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        delay = fake._faults.delay_seconds     # as set when the request arrived (a test may change it next)
        record = RecordedRequest(self.command, path, query, dict(self.headers.items()), body)
        with fake._requests_lock:
            fake._requests.append(record)
        status, payload, headers = fake._answer(self.command, path, query, self.headers, body)
        if delay and fake._stopping.wait(delay):
            self.close_connection = True  # stop() during the delay: the answer is never sent
            return
        data = b"" if payload is None else json.dumps(payload).encode()
        # Recorded before the answer goes out: a client that has its answer must see it recorded.
        record.status = status
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", f"{FHIR_JSON}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client went away, or stop() cut the connection
            record.status = 0
            self.close_connection = True


class FakeFhirServer:
    """A FHIR R4 server on 127.0.0.1; see the module docstring for what it implements.

    Lifecycle: `start()` binds (port 0 the first time, then the same port), `stop()` closes the
    listener and every open connection but keeps the stored resources, `close()` is `stop()` for
    good. Use it as a context manager or through the `fhir_server` pytest fixture.
    """

    def __init__(self, *, validate: bool = False, enforce_referential_integrity: bool = True,
                 host: str = "127.0.0.1") -> None:
        self.interactions = FhirInteractions(validate=validate,
                                             enforce_referential_integrity=enforce_referential_integrity)
        self.host = host
        self.port = 0
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._faults = _Faults()
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("the server has not been started")
        return f"http://{self.host}:{self.port}{BASE_PATH}"

    @property
    def running(self) -> bool:
        return self._http is not None

    def start(self) -> FakeFhirServer:
        if self._http is not None:
            return self
        self._stopping.clear()
        http_server = _HttpServer((self.host, self.port), self)
        self.port = http_server.server_address[1]
        self._http = http_server
        self._thread = threading.Thread(target=http_server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"fake-fhir-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection; stored resources stay for `start()`."""
        http_server, self._http = self._http, None
        if http_server is None:
            return
        self._stopping.set()  # wakes handlers held by delay()
        http_server.shutdown()
        http_server.server_close()
        with http_server.connections_lock:
            connections = list(http_server.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    close = stop

    def __enter__(self) -> FakeFhirServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- fault injection --------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next `n` requests with `status` and an OperationOutcome, processing nothing."""
        with self._faults.lock:
            self._faults.fail_remaining, self._faults.fail_status = n, status

    def reject_next(self, n: int = 1, reason: str = "rejected by test fault injection") -> None:
        """Answer the next `n` requests with 400 and an OperationOutcome whose diagnostics is `reason`."""
        with self._faults.lock:
            self._faults.reject_remaining, self._faults.reject_reason = n, reason

    def fail_identifier(self, value: str, status: int = 503) -> None:
        """Answer `status` to every request that carries a resource with an identifier of this
        value (e.g. one patient's MRN), until `clear_identifier`; other requests are served."""
        with self._faults.lock:
            self._faults.by_identifier[value] = (status, f"injected failure for identifier {value}: "
                                                         f"{status_line(status)}")

    def reject_identifier(self, value: str, reason: str = "rejected by test fault injection") -> None:
        """Answer 400 with `reason` as diagnostics to every request carrying this identifier value."""
        with self._faults.lock:
            self._faults.by_identifier[value] = (400, reason)

    def clear_identifier(self, value: str) -> None:
        with self._faults.lock:
            self._faults.by_identifier.pop(value, None)

    def delay(self, seconds: float) -> None:
        """Hold every answer back by `seconds` after processing the request (0 turns it off)."""
        self._faults.delay_seconds = seconds

    # -- inspection -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._requests_lock:
            return list(self._requests)

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        """Current versions of every stored, not deleted, resource of that type."""
        return self.interactions.resources(resource_type)

    def history(self, resource_type: str, resource_id: str) -> list[StoredVersion]:
        return self.interactions.history(resource_type, resource_id)

    # -- request dispatch (called from handler threads) -------------------------------------------

    def _take_fault(self, body: bytes) -> tuple[int, dict[str, Any]] | None:
        with self._faults.lock:
            if self._faults.by_identifier:
                carried = _identifier_values(body)
                for value, (status, diagnostics) in self._faults.by_identifier.items():
                    if value in carried:
                        code = "transient" if status >= 500 else "processing"
                        return status, operation_outcome([OutcomeIssue(code, diagnostics)])
            if self._faults.fail_remaining > 0:
                self._faults.fail_remaining -= 1
                status = self._faults.fail_status
                code = "transient" if status >= 500 else "processing"
                return status, operation_outcome([OutcomeIssue(
                    code, f"injected failure: {status_line(status)}")])
            if self._faults.reject_remaining > 0:
                self._faults.reject_remaining -= 1
                return 400, operation_outcome([OutcomeIssue("processing",
                                                            self._faults.reject_reason)])
        return None

    def _answer(self, method: str, path: str, query: str, headers: Any,
                body: bytes) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        fault = self._take_fault(body)
        if fault is not None:
            return fault[0], fault[1], {}
        try:
            return self._dispatch(method, path, query, headers, body)
        except FhirHttpError as exc:
            return exc.status, exc.outcome(), {}
        except Exception as exc:  # a bug in the fake must still answer, not hang the client
            return 500, operation_outcome([OutcomeIssue("exception",
                                                        f"fake server error: {type(exc).__name__}")]), {}

    def _dispatch(self, method: str, path: str, query: str, headers: Any,
                  body: bytes) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        if path != BASE_PATH and not path.startswith(BASE_PATH + "/"):
            raise FhirHttpError(404, "not-found", f"no FHIR endpoint at {path}; the base is "
                                f"{BASE_PATH}")
        parts = [p for p in path[len(BASE_PATH):].split("/") if p]
        if method == "GET" and parts == ["metadata"]:
            return 200, capability_statement(), {}
        if method == "GET" and len(parts) == 2:
            resource, stored = self.interactions.read(parts[0], parts[1])
            return 200, resource, _version_headers(stored)
        if method == "GET" and len(parts) == 1:
            return 200, self.interactions.search(parts[0], query, self.base_url), {}
        if method in ("POST", "PUT"):
            parsed = _parse_fhir_json(headers, body)
            if not parts and method == "POST":
                return 200, self.interactions.process_bundle(parsed), {}
            return self._single_write(method, parts, query, headers, parsed)
        if method == "DELETE" and parts:
            url = "/".join(parts) + (f"?{query}" if query else "")
            self.interactions.process_bundle(_one_entry_transaction("DELETE", url, None, {}))
            return 204, None, {}
        raise FhirHttpError(405 if method == "PATCH" else 400, "not-supported",
                            f"{method} {path} is not an interaction this server supports")

    def _single_write(self, method: str, parts: list[str], query: str, headers: Any,
                      resource: Any) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """POST Type, PUT Type/id and PUT Type?search, run as a one-entry transaction."""
        if not parts or len(parts) > 2 or (method == "POST" and len(parts) != 1):
            raise FhirHttpError(400, "invalid", f"{method} needs Type or Type/id after the base")
        url = "/".join(parts) + (f"?{query}" if query else "")
        extra = {}
        if headers.get("If-None-Exist"):
            extra["ifNoneExist"] = headers["If-None-Exist"]
        if headers.get("If-Match"):
            extra["ifMatch"] = headers["If-Match"]
        response = self.interactions.process_bundle(
            _one_entry_transaction(method, url, resource, extra))["entry"][0]["response"]
        status = int(response["status"].split()[0])
        location = response["location"]
        resource_type, resource_id = location.split("/")[:2]
        stored, version = self.interactions.read(resource_type, resource_id)
        out_headers = _version_headers(version)
        out_headers["Location"] = f"{self.base_url}/{location}"
        if "return=minimal" in (headers.get("Prefer") or ""):
            return status, None, out_headers
        return status, stored, out_headers


def _identifier_values(body: bytes) -> set[str]:
    """Every identifier.value anywhere in a JSON body (a Bundle's entries, or one resource)."""
    try:
        document = json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return set()
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            identifiers = node.get("identifier")
            for identifier in identifiers if isinstance(identifiers, list) else [identifiers]:
                if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
                    found.add(identifier["value"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(document)
    return found


def _one_entry_transaction(method: str, url: str, resource: Any,
                           extra: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"request": {"method": method, "url": url, **extra}}
    if resource is not None:
        entry["resource"] = resource
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}


def _version_headers(stored: StoredVersion) -> dict[str, str]:
    last_modified = datetime.datetime.fromisoformat(stored.last_updated)
    return {"ETag": f'W/"{stored.version}"',
            "Last-Modified": last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT")}


def _parse_fhir_json(headers: Any, body: bytes) -> Any:
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type not in (FHIR_JSON, "application/json"):
        raise FhirHttpError(415, "not-supported", f"Content-Type must be {FHIR_JSON}")
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise FhirHttpError(400, "structure", f"body is not valid JSON (line {exc.lineno} "
                            f"column {exc.colno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise FhirHttpError(400, "structure", "body is not UTF-8 JSON") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("resourceType"), str):
        raise FhirHttpError(400, "structure", "body is not a FHIR resource (no resourceType)")
    return parsed


@pytest.fixture
def fhir_server() -> Iterator[FakeFhirServer]:
    """A running FakeFhirServer for one test, validating every written resource against the R4B
    models (a structurally invalid resource answers 400, as a real server would); stopped afterwards."""
    with FakeFhirServer(validate=True) as server:
        yield server

