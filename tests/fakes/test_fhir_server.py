"""The FHIR server simulator behaves as the FHIR R4 REST spec says, over real loopback HTTP."""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import pytest

from .fhir_server import FHIR_JSON, FakeFhirServer, fhir_server  # noqa: F401 - fixture import

MRN = "urn:oid:1.2.3.4.5"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


def patient(mrn: str = "MRN-1", family: str = "Santoso") -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": MRN, "value": mrn}],
            "name": [{"family": family}]}


def transaction(*entries: dict[str, Any], bundle_type: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": bundle_type, "entry": list(entries)}


def conditional_create(full_url: str, resource: dict[str, Any], query: str) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": query}}


def conditional_update(full_url: str, resource: dict[str, Any], query: str) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}?{query}"}}


def post_bundle(fhir: FakeFhirServer, bundle: Any) -> httpx.Response:
    return httpx.post(fhir.base_url, json=bundle, headers=HEADERS, timeout=5)


def statuses(response: httpx.Response) -> list[str]:
    return [entry["response"]["status"] for entry in response.json()["entry"]]


PATIENT_QUERY = f"identifier={MRN}|MRN-1"


def test_conditional_create_twice_stores_one_patient(fhir_server: FakeFhirServer) -> None:
    bundle = transaction(conditional_create("urn:uuid:0b8a7e5e-0000-4000-8000-000000000001",
                                            patient(), PATIENT_QUERY))
    first = post_bundle(fhir_server, bundle)
    second = post_bundle(fhir_server, bundle)

    assert first.status_code == 200 and second.status_code == 200
    assert first.headers["content-type"].startswith(FHIR_JSON)
    assert first.json()["type"] == "transaction-response"
    assert statuses(first) == ["201 Created"]
    assert statuses(second) == ["200 OK"]
    assert first.json()["entry"][0]["response"]["location"] == \
        second.json()["entry"][0]["response"]["location"]
    assert first.json()["entry"][0]["response"]["location"].endswith("/_history/1")
    assert len(fhir_server.resources("Patient")) == 1


def test_conditional_update_creates_then_updates_the_same_resource(fhir_server: FakeFhirServer) -> None:
    url = "urn:uuid:0b8a7e5e-0000-4000-8000-000000000002"
    created = post_bundle(fhir_server, transaction(conditional_update(url, patient(), PATIENT_QUERY)))
    updated = post_bundle(fhir_server, transaction(
        conditional_update(url, patient(family="Wijaya"), PATIENT_QUERY)))

    assert statuses(created) == ["201 Created"]
    assert statuses(updated) == ["200 OK"]
    stored = fhir_server.resources("Patient")
    assert len(stored) == 1
    assert stored[0]["name"][0]["family"] == "Wijaya"
    assert stored[0]["meta"]["versionId"] == "2"
    assert updated.json()["entry"][0]["response"]["etag"] == 'W/"2"'


def test_replaying_an_identical_update_keeps_the_version(fhir_server: FakeFhirServer) -> None:
    bundle = transaction(conditional_update("urn:uuid:0b8a7e5e-0000-4000-8000-000000000003",
                                            patient(), PATIENT_QUERY))
    post_bundle(fhir_server, bundle)
    replay = post_bundle(fhir_server, bundle)

    assert statuses(replay) == ["200 OK"]
    assert replay.json()["entry"][0]["response"]["location"].endswith("/_history/1")
    (stored,) = fhir_server.resources("Patient")
    assert len(fhir_server.history("Patient", stored["id"])) == 1


def test_conditional_update_matching_two_resources_is_412(fhir_server: FakeFhirServer) -> None:
    for _ in range(2):  # plain creates, so two Patients share the identifier
        post_bundle(fhir_server, transaction({"resource": patient(),
                                              "request": {"method": "POST", "url": "Patient"}}))
    response = post_bundle(fhir_server, transaction(
        conditional_update("urn:uuid:0b8a7e5e-0000-4000-8000-000000000004", patient(), PATIENT_QUERY)))

    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"


def test_urn_uuid_references_are_rewritten_to_the_final_ids(fhir_server: FakeFhirServer) -> None:
    patient_url = "urn:uuid:0b8a7e5e-0000-4000-8000-000000000010"
    encounter_url = "urn:uuid:0b8a7e5e-0000-4000-8000-000000000011"
    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "subject": {"reference": patient_url}, "encounter": {"reference": encounter_url},
             "identifier": [{"system": "urn:placer", "value": "ORD-1"}],
             "note": [{"text": "x", "authorReference": {"reference": patient_url}}]}
    encounter = {"resourceType": "Encounter", "status": "in-progress",
                 "class": {"code": "AMB"}, "subject": {"reference": patient_url},
                 "identifier": [{"system": "urn:visit", "value": "V1"}]}
    response = post_bundle(fhir_server, transaction(
        conditional_update("urn:uuid:0b8a7e5e-0000-4000-8000-000000000012", order,
                           "identifier=urn:placer|ORD-1"),
        conditional_update(encounter_url, encounter, "identifier=urn:visit|V1"),
        conditional_create(patient_url, patient(), PATIENT_QUERY)))

    assert response.status_code == 200, response.text
    (stored_patient,) = fhir_server.resources("Patient")
    (stored_encounter,) = fhir_server.resources("Encounter")
    (stored_order,) = fhir_server.resources("ServiceRequest")
    patient_ref = f"Patient/{stored_patient['id']}"
    assert stored_order["subject"]["reference"] == patient_ref
    assert stored_order["note"][0]["authorReference"]["reference"] == patient_ref
    assert stored_order["encounter"]["reference"] == f"Encounter/{stored_encounter['id']}"
    assert stored_encounter["subject"]["reference"] == patient_ref
    # Response entries keep the request order even though POST runs before PUT.
    locations = [e["response"]["location"] for e in response.json()["entry"]]
    assert [loc.split("/")[0] for loc in locations] == ["ServiceRequest", "Encounter", "Patient"]


def test_reference_to_an_existing_patient_found_by_conditional_create(fhir_server: FakeFhirServer) -> None:
    post_bundle(fhir_server, transaction(conditional_create("urn:uuid:a", patient(), PATIENT_QUERY)))
    (existing,) = fhir_server.resources("Patient")
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "hb"},
                   "subject": {"reference": "urn:uuid:b"}}
    response = post_bundle(fhir_server, transaction(
        conditional_create("urn:uuid:b", patient(), PATIENT_QUERY),
        {"fullUrl": "urn:uuid:c", "resource": observation,
         "request": {"method": "POST", "url": "Observation"}}))

    assert statuses(response) == ["200 OK", "201 Created"]
    (stored,) = fhir_server.resources("Observation")
    assert stored["subject"]["reference"] == f"Patient/{existing['id']}"


def test_unresolved_urn_uuid_reference_is_400_and_nothing_is_stored(fhir_server: FakeFhirServer) -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "hb"},
                   "subject": {"reference": "urn:uuid:0b8a7e5e-0000-4000-8000-0000000000ff"}}
    response = post_bundle(fhir_server, transaction(
        conditional_create("urn:uuid:1", patient(), PATIENT_QUERY),
        {"fullUrl": "urn:uuid:2", "resource": observation,
         "request": {"method": "POST", "url": "Observation"}}))

    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "urn:uuid:0b8a7e5e-0000-4000-8000-0000000000ff" in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[1].resource.subject.reference"]
    assert fhir_server.resources("Patient") == []


def test_failing_entry_rolls_back_the_whole_transaction(fhir_server: FakeFhirServer) -> None:
    post_bundle(fhir_server, transaction(conditional_update("urn:uuid:1", patient(), PATIENT_QUERY)))
    response = post_bundle(fhir_server, transaction(
        conditional_update("urn:uuid:1", patient(family="Changed"), PATIENT_QUERY),
        conditional_create("urn:uuid:2", patient("MRN-2"), f"identifier={MRN}|MRN-2"),
        # Fails only after the first two entries were written: its subject names no resource.
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "hb"},
                      "subject": {"reference": "Patient/nobody"}},
         "request": {"method": "POST", "url": "Observation"}}))

    assert response.status_code == 400
    assert len(fhir_server.resources("Patient")) == 1
    stored = fhir_server.resources("Patient")
    assert [p["name"][0]["family"] for p in stored] == ["Santoso"]
    assert stored[0]["meta"]["versionId"] == "1"


def test_reference_to_a_resource_that_does_not_exist_is_400(fhir_server: FakeFhirServer) -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "hb"},
                   "subject": {"reference": "Patient/nobody"}}
    response = post_bundle(fhir_server, transaction(
        {"resource": observation, "request": {"method": "POST", "url": "Observation"}}))

    assert response.status_code == 400
    assert fhir_server.resources("Observation") == []


def test_batch_entries_succeed_or_fail_one_by_one(fhir_server: FakeFhirServer) -> None:
    response = post_bundle(fhir_server, transaction(
        conditional_create("urn:uuid:1", patient(), PATIENT_QUERY),
        {"resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/x"}},
        bundle_type="batch"))

    assert response.status_code == 200
    assert response.json()["type"] == "batch-response"
    assert statuses(response) == ["201 Created", "400 Bad Request"]
    assert response.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert len(fhir_server.resources("Patient")) == 1


def test_put_with_id_creates_then_updates(fhir_server: FakeFhirServer) -> None:
    body = {**patient(), "id": "p-42"}
    entry = {"resource": body, "request": {"method": "PUT", "url": "Patient/p-42"}}
    assert statuses(post_bundle(fhir_server, transaction(entry))) == ["201 Created"]
    entry["resource"] = {**body, "gender": "female"}
    assert statuses(post_bundle(fhir_server, transaction(entry))) == ["200 OK"]
    read = httpx.get(f"{fhir_server.base_url}/Patient/p-42", headers=HEADERS)
    assert read.status_code == 200
    assert read.json()["gender"] == "female"
    assert read.headers["etag"] == 'W/"2"'


def test_delete_then_read_is_410(fhir_server: FakeFhirServer) -> None:
    post_bundle(fhir_server, transaction({"resource": {**patient(), "id": "gone"},
                                          "request": {"method": "PUT", "url": "Patient/gone"}}))
    response = post_bundle(fhir_server, transaction(
        {"request": {"method": "DELETE", "url": "Patient/gone"}}))

    assert statuses(response) == ["204 No Content"]
    assert httpx.get(f"{fhir_server.base_url}/Patient/gone").status_code == 410
    assert httpx.get(f"{fhir_server.base_url}/Patient/never").status_code == 404


def test_search_by_identifier_returns_a_searchset(fhir_server: FakeFhirServer) -> None:
    post_bundle(fhir_server, transaction(
        conditional_create("urn:uuid:1", patient(), PATIENT_QUERY),
        conditional_create("urn:uuid:2", patient("MRN-2"), f"identifier={MRN}|MRN-2")))

    found = httpx.get(f"{fhir_server.base_url}/Patient", params={"identifier": f"{MRN}|MRN-2"})
    by_value_only = httpx.get(f"{fhir_server.base_url}/Patient", params={"identifier": "MRN-1"})
    wrong_system = httpx.get(f"{fhir_server.base_url}/Patient", params={"identifier": "urn:x|MRN-1"})

    assert found.json()["type"] == "searchset"
    assert found.json()["total"] == 1
    assert found.json()["entry"][0]["resource"]["identifier"][0]["value"] == "MRN-2"
    assert found.json()["entry"][0]["fullUrl"].startswith(fhir_server.base_url + "/Patient/")
    assert by_value_only.json()["total"] == 1
    assert wrong_system.json()["total"] == 0


def test_unsupported_search_parameter_is_400(fhir_server: FakeFhirServer) -> None:
    response = httpx.get(f"{fhir_server.base_url}/Patient", params={"name": "x"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "not-supported"


def test_metadata_is_an_r4_capability_statement(fhir_server: FakeFhirServer) -> None:
    response = httpx.get(f"{fhir_server.base_url}/metadata")
    assert response.status_code == 200
    assert response.json()["resourceType"] == "CapabilityStatement"
    assert response.json()["fhirVersion"] == "4.0.1"


@pytest.mark.parametrize("body, content_type", [
    (b"{not json", FHIR_JSON),
    (b'{"resourceType": "Patient"}', FHIR_JSON),
    (b'{"type": "transaction"}', FHIR_JSON),
    (b'["a list"]', FHIR_JSON),
])
def test_bad_bodies_on_the_base_are_400_operation_outcomes(
        fhir_server: FakeFhirServer, body: bytes, content_type: str) -> None:
    response = httpx.post(fhir_server.base_url, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_resource_without_resource_type_in_an_entry_is_400(fhir_server: FakeFhirServer) -> None:
    response = post_bundle(fhir_server, transaction(
        {"resource": {"name": [{"family": "X"}]}, "request": {"method": "POST", "url": "Patient"}}))
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource"]


def test_wrong_content_type_is_415(fhir_server: FakeFhirServer) -> None:
    response = httpx.post(fhir_server.base_url, content=b"<Bundle/>",
                          headers={"Content-Type": "application/fhir+xml"})
    assert response.status_code == 415


def test_validation_reports_each_finding() -> None:
    with FakeFhirServer(validate=True) as fhir:
        bad = {"resourceType": "Patient", "birthDate": "not-a-date", "colour": "blue"}
        response = post_bundle(fhir, transaction({"resource": bad,
                                                  "request": {"method": "POST", "url": "Patient"}}))
        good = post_bundle(fhir, transaction({"resource": patient(),
                                              "request": {"method": "POST", "url": "Patient"}}))

    assert response.status_code == 400
    expressions = {e for issue in response.json()["issue"] for e in issue["expression"]}
    assert "Bundle.entry[0].resource.birthDate" in expressions
    assert "Bundle.entry[0].resource.colour" in expressions
    assert good.status_code == 200


def test_direct_create_update_and_conditional_create(fhir_server: FakeFhirServer) -> None:
    created = httpx.post(f"{fhir_server.base_url}/Patient", json=patient(),
                         headers={**HEADERS, "If-None-Exist": PATIENT_QUERY})
    again = httpx.post(f"{fhir_server.base_url}/Patient", json=patient(),
                       headers={**HEADERS, "If-None-Exist": PATIENT_QUERY})

    assert created.status_code == 201
    assert created.headers["location"].startswith(fhir_server.base_url + "/Patient/")
    assert again.status_code == 200
    assert again.json()["id"] == created.json()["id"]
    assert len(fhir_server.resources("Patient")) == 1


def test_fail_next_answers_n_requests_with_the_status(fhir_server: FakeFhirServer) -> None:
    fhir_server.fail_next(2, status=503)
    bundle = transaction(conditional_create("urn:uuid:1", patient(), PATIENT_QUERY))
    answers = [post_bundle(fhir_server, bundle) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json()["issue"][0]["code"] == "transient"
    assert len(fhir_server.resources("Patient")) == 1
    assert [r.status for r in fhir_server.requests] == [503, 503, 200]
    assert fhir_server.requests[0].json["type"] == "transaction"


def test_reject_next_answers_400_naming_the_problem(fhir_server: FakeFhirServer) -> None:
    fhir_server.reject_next(1, reason="Patient.identifier: NIK checksum invalid")
    bundle = transaction(conditional_create("urn:uuid:1", patient(), PATIENT_QUERY))
    rejected = post_bundle(fhir_server, bundle)
    accepted = post_bundle(fhir_server, bundle)

    assert rejected.status_code == 400
    assert rejected.json()["issue"][0]["diagnostics"] == "Patient.identifier: NIK checksum invalid"
    assert accepted.status_code == 200


def test_delay_holds_the_answer_but_processes_the_request(fhir_server: FakeFhirServer) -> None:
    fhir_server.delay(0.5)
    bundle = transaction(conditional_create("urn:uuid:1", patient(), PATIENT_QUERY))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(fhir_server.base_url, json=bundle, headers=HEADERS, timeout=0.1)
    time.sleep(0.05)
    assert len(fhir_server.resources("Patient")) == 1  # the client timed out, the server committed

    fhir_server.delay(0)
    started = time.monotonic()
    assert statuses(post_bundle(fhir_server, bundle)) == ["200 OK"]
    assert time.monotonic() - started < 0.4


def test_stop_and_start_on_the_same_port(fhir_server: FakeFhirServer) -> None:
    base_url = fhir_server.base_url
    post_bundle(fhir_server, transaction(conditional_create("urn:uuid:1", patient(), PATIENT_QUERY)))
    with httpx.Client(timeout=2) as client:  # a keep-alive connection open across the stop
        assert client.get(f"{base_url}/metadata").status_code == 200
        fhir_server.stop()
        with pytest.raises(httpx.TransportError):
            client.get(f"{base_url}/metadata")
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", fhir_server.port)) != 0  # nothing listens

        fhir_server.start()
        assert fhir_server.base_url == base_url
        assert client.get(f"{base_url}/metadata").status_code == 200
    assert len(fhir_server.resources("Patient")) == 1  # the data survives the outage


def test_requests_outside_the_base_path_are_404(fhir_server: FakeFhirServer) -> None:
    base_without_path = fhir_server.base_url.removesuffix("/fhir")
    response = httpx.get(f"{base_without_path}/Patient/1")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_usable_from_async_tests(fhir_server: FakeFhirServer) -> None:
    bundle = transaction(conditional_create("urn:uuid:1", patient(), PATIENT_QUERY))
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(fhir_server.base_url, json=bundle, headers=HEADERS)
    assert statuses(response) == ["201 Created"]


def test_stop_while_an_answer_is_delayed_does_not_hang() -> None:
    fhir = FakeFhirServer().start()
    fhir.delay(30)
    bundle = transaction(conditional_create("urn:uuid:1", patient(), PATIENT_QUERY))
    with httpx.Client(timeout=5) as client:
        errors: list[Exception] = []

        def send() -> None:
            try:
                client.post(fhir.base_url, json=bundle, headers=HEADERS)
            except httpx.TransportError as exc:
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.2)
        started = time.monotonic()
        fhir.stop()
        sender.join(timeout=5)
    assert time.monotonic() - started < 2
    assert not sender.is_alive()
    assert len(errors) == 1  # the client sees the connection drop, as with a crashed server
