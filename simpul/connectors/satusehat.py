"""satusehat: report each visit's Encounter, Conditions, Observations and Procedures to SATUSEHAT.

Features
    Takes our mapped FHIR transaction Bundle (ADT, ORU, ...). Finds the patient's IHS number (by
    NIK, once; remembered), creates the Encounter (`arrived`, org-scoped identifier with our visit
    number), then each Condition / Observation / Procedure against it, and at discharge updates
    the Encounter to `finished` with its statusHistory and discharge diagnoses. Each SATUSEHAT id
    is kept in the ledger, so a retried or later message for the same visit never creates twice.
    `submit: transaction` sends the new resources of a message as one transaction Bundle.
Connection
    `environment` (dev, staging, prod) or `auth_url` + `fhir_url`; the client id and secret come from
    the environment or `secrets_file`, never from the channel file.
Options
    org_id, locations, practitioners, default_location, submit, ledger_url, timeout,
    refresh_margin, rate_per_second.
Errors
    transport failures, 429, 5xx, an expired token that cannot be renewed: retryable. A 4xx
    OperationOutcome (SATUSEHAT's own text) or data SATUSEHAT requires and we lack: final, so the
    message becomes a dead letter with that reason; the refusal is kept in the ledger and a
    corrected resubmission links to it.
"""
from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simpul.config_types import Duration
from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.connectors.bpjs.ledger import Ledger, open_ledger
from simpul.connectors.bpjs.satusehat_build import (
    BuildError, OrgSettings, Visit, condition_resource, encounter_resource, observation_resource, patient_keys,
    procedure_resource, read_bundle, visit_number,
)
from simpul.connectors.bpjs.satusehat_client import ENVIRONMENTS, SatusehatClient
from simpul.connectors.bpjs.service import ServiceRejected, read_secrets

SERVICE = "satusehat"


class SatusehatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: str = Field(description="The hospital's SATUSEHAT Organization id (one per client id).",
                        examples=["10000004"])
    environment: Literal["dev", "staging", "prod"] = Field("dev", description="Which SATUSEHAT to call.")
    auth_url: str | None = Field(None, description="OAuth2 base instead of the environment's (simulators).")
    fhir_url: str | None = Field(None, description="FHIR base instead of the environment's (simulators).")
    locations: dict[str, str] = Field(default_factory=dict, description="Our location (PV1-3 key such as "
                                      "'RSUD/POLI-INT', or its name) to SATUSEHAT Location id.")
    default_location: str | None = Field(None, description="Location id for visits whose location is not listed.")
    practitioners: dict[str, str] = Field(default_factory=dict, description="Our practitioner id (PV1-7.1) to "
                                          "SATUSEHAT Practitioner IHS id.")
    submit: Literal["single", "transaction"] = Field("single", description="One request per resource, or the "
                                                     "new resources of a message as one transaction Bundle.")
    client_id_env: str = Field("SATUSEHAT_CLIENT_ID", description="Variable holding the client id.")
    client_secret_env: str = Field("SATUSEHAT_CLIENT_SECRET", description="Variable holding the client secret.")
    secrets_file: str | None = Field(None, description="KEY=VALUE file read before the environment.")
    ledger_url: str | None = Field(None, description="Database keeping SATUSEHAT ids and refusals; normally "
                                   "${SIMPUL_DATABASE_URL} (the engine's store, read by simpul satusehat status).")
    timeout: Duration = Field(30.0, description="Per-request timeout.")
    refresh_margin: Duration = Field(300.0, description="Fetch a new token this long before the old one expires.")
    rate_per_second: float = Field(0.0, description="At most this many calls a second (0: no limit).")


class SatusehatConnector:
    def __init__(self, config: SatusehatConfig) -> None:
        self.config = config
        self.settings = OrgSettings(config.org_id, dict(config.locations), dict(config.practitioners),
                                    config.default_location)
        self._client: SatusehatClient | None = None
        self._ledger: Ledger | None = None

    async def connect(self) -> None:
        if self._client is not None:
            return
        config = self.config
        secrets = read_secrets([config.client_id_env, config.client_secret_env], secrets_file=config.secrets_file)
        auth, fhir = ENVIRONMENTS[config.environment]
        self._client = SatusehatClient(config.auth_url or auth, config.fhir_url or fhir, secrets[config.client_id_env],
                                       secrets[config.client_secret_env], timeout=config.timeout,
                                       refresh_margin=config.refresh_margin, rate_per_second=config.rate_per_second)
        if self._ledger is None:
            self._ledger = await asyncio.to_thread(open_ledger, config.ledger_url)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send(self, outgoing: Outgoing) -> str:
        await self.connect()
        assert self._client is not None and self._ledger is not None
        try:
            bundle = json.loads(outgoing.payload)
            visit = read_bundle(bundle)
        except (ValueError, BuildError) as exc:
            raise ServiceRejected("SATUSEHAT", "read", "local", str(exc) if isinstance(exc, BuildError)
                                  else "payload is not JSON", local=True) from None
        if visit.encounter is None:
            return "nothing for SATUSEHAT (no Encounter in the message)"
        try:
            number = visit_number(visit.encounter)
        except BuildError as exc:
            raise ServiceRejected("SATUSEHAT", "read", "local", str(exc), local=True) from None
        run = _Run(self._client, self._ledger, self.settings, visit, number, outgoing)
        try:
            return await run.submit(self.config.submit)
        except BuildError as exc:
            refused = ServiceRejected("SATUSEHAT", "build", "local", str(exc), local=True)
            await run.record("Encounter", run.encounter_ref_key, "refused", message=str(exc))
            raise refused from None
        except ServiceRejected as refused:
            await run.record(run.current_kind, run.current_ref, "refused", message=refused.service_message)
            raise


class _Run:
    """One delivery: what it found in the ledger and what it sent."""

    def __init__(self, client: SatusehatClient, ledger: Ledger, settings: OrgSettings, visit: Visit, number: str,
                 outgoing: Outgoing) -> None:
        self.client, self.ledger, self.settings, self.visit, self.number = client, ledger, settings, visit, number
        self.outgoing = outgoing
        self.encounter_ref_key = f"Encounter|{settings.org_id}|{number}"
        self.current_kind, self.current_ref = "Encounter", self.encounter_ref_key
        self.sent: list[str] = []

    async def record(self, kind: str, local_ref: str, status: str, *, remote_id: str | None = None,
                     message: str | None = None, detail: dict[str, Any] | None = None) -> None:
        await asyncio.to_thread(self.ledger.record, SERVICE, kind, self.number, local_ref, status=status,
                                remote_id=remote_id, message=message, detail=detail, channel=self.outgoing.channel,
                                control_id=self.outgoing.control_id)

    async def _sent_id(self, local_ref: str) -> str | None:
        row = await asyncio.to_thread(self.ledger.latest, SERVICE, local_ref)
        return row.remote_id if row is not None and row.status == "sent" else None

    async def _patient_ihs(self) -> str:
        patient = self.visit.patient
        if patient is None:
            raise BuildError("the message has no Patient: SATUSEHAT needs the patient's NIK")
        mrn, nik = patient_keys(patient)
        known = await asyncio.to_thread(self.ledger.identity, SERVICE, "patient", mrn)
        if known:
            return known
        if not nik:
            raise BuildError("the patient has no NIK (PID-3 with identifier type NIK) and no IHS number is known yet")
        self.current_kind, self.current_ref = "Patient", f"Patient|{mrn}"
        ihs = await self.client.patient_ihs(nik)
        if ihs is None:
            raise ServiceRejected("SATUSEHAT", "patient_by_nik", "not-found", "no SATUSEHAT patient has this NIK")
        await asyncio.to_thread(self.ledger.remember, SERVICE, "patient", mrn, ihs)
        return ihs

    async def submit(self, mode: str) -> str:
        assert self.visit.encounter is not None
        ihs = await self._patient_ihs()
        encounter_id = await self._sent_id(self.encounter_ref_key)
        items = await self._pending(ihs)
        if mode == "transaction" and (items or encounter_id is None):
            encounter_id = await self._transaction(ihs, encounter_id, items)
        else:
            if encounter_id is None:
                encounter_id = await self._create_encounter(ihs)
            for kind, local_ref, build in items:
                self.current_kind, self.current_ref = kind, local_ref
                remote = await self.client.create(build(f"Encounter/{encounter_id}"))
                await self.record(kind, local_ref, "sent", remote_id=remote)
                self.sent.append(kind)
        await self._finish(ihs, encounter_id)
        counts = {kind: self.sent.count(kind) for kind in dict.fromkeys(self.sent)}
        summary = ", ".join(f"{count} {kind}" for kind, count in counts.items()) or "nothing new"
        return f"SATUSEHAT Encounter {encounter_id}: {summary}"

    async def _pending(self, ihs: str) -> list[tuple[str, str, Callable[[str], dict[str, Any]]]]:
        """The visit's resources not yet at SATUSEHAT: (kind, our ref, build(encounter_reference))."""
        performer = self.settings.practitioner_for(self.visit, self.visit.encounter or {})
        actor = f"Practitioner/{performer}" if performer else f"Organization/{self.settings.org_id}"
        def condition(resource: dict[str, Any], ref: str) -> dict[str, Any]:
            return condition_resource(resource, ihs=ihs, encounter_ref=ref)

        def observation(resource: dict[str, Any], ref: str) -> dict[str, Any]:
            return observation_resource(resource, ihs=ihs, encounter_ref=ref, performer=actor)

        def procedure(resource: dict[str, Any], ref: str) -> dict[str, Any]:
            return procedure_resource(resource, ihs=ihs, encounter_ref=ref, performer=actor)

        items: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = []
        kinds: list[tuple[str, list[dict[str, Any]], Callable[[dict[str, Any], str], dict[str, Any]]]] = [
            ("Condition", self.visit.conditions, condition), ("Observation", self.visit.observations, observation),
            ("Procedure", self.visit.procedures, procedure)]
        for kind, resources, build in kinds:
            for resource in resources:
                local_ref = f"{kind}|{self.settings.org_id}|{resource.get('id')}"
                if await self._sent_id(local_ref) is None:
                    build(resource, "Encounter/check")      # a BuildError names the gap before anything is sent
                    items.append((kind, local_ref, functools.partial(build, resource)))
        return items

    async def _create_encounter(self, ihs: str) -> str:
        arrived = {**(self.visit.encounter or {}), "status": "in-progress"}   # created as arrived, finished by PUT
        resource = encounter_resource(Visit(**{**self.visit.__dict__, "encounter": arrived}), self.settings,
                                      ihs=ihs, remote_id=None, condition_ids=[])
        self.current_kind, self.current_ref = "Encounter", self.encounter_ref_key
        remote = await self.client.create(resource)
        await self.record("Encounter", self.encounter_ref_key, "sent", remote_id=remote, detail={"status": "arrived"})
        self.sent.append("Encounter")
        return remote

    async def _transaction(self, ihs: str, encounter_id: str | None, items: list[tuple[str, str, Callable[[str], dict[str, Any]]]]) -> str:
        entries: list[dict[str, Any]] = []
        refs: list[tuple[str, str]] = []
        encounter_ref = f"Encounter/{encounter_id}" if encounter_id else f"urn:uuid:{uuid.uuid4()}"
        if encounter_id is None:
            arrived = {**(self.visit.encounter or {}), "status": "in-progress"}
            resource = encounter_resource(Visit(**{**self.visit.__dict__, "encounter": arrived}), self.settings,
                                          ihs=ihs, remote_id=None, condition_ids=[])
            entries.append({"fullUrl": encounter_ref, "resource": resource, "request": {"method": "POST", "url": "Encounter"}})
            refs.append(("Encounter", self.encounter_ref_key))
        for kind, local_ref, build in items:
            entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": build(encounter_ref),
                            "request": {"method": "POST", "url": kind}})
            refs.append((kind, local_ref))
        self.current_kind, self.current_ref = "Bundle", self.encounter_ref_key
        results = await self.client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
        if len(results) != len(refs):
            raise ServiceRejected("SATUSEHAT", "transaction", "count", f"{len(results)} answers for {len(refs)} entries")
        for (kind, local_ref), (_, remote) in zip(refs, results):
            await self.record(kind, local_ref, "sent", remote_id=remote,
                              detail={"status": "arrived"} if kind == "Encounter" else None)
            self.sent.append(kind)
            if kind == "Encounter":
                encounter_id = remote
        assert encounter_id is not None
        return encounter_id

    async def _finish(self, ihs: str, encounter_id: str) -> None:
        encounter = self.visit.encounter or {}
        if encounter.get("status") != "finished":
            return
        latest = await asyncio.to_thread(self.ledger.latest, SERVICE, self.encounter_ref_key)
        if latest is not None and latest.detail.get("status") == "finished":
            return
        rows = await asyncio.to_thread(self.ledger.for_visit, SERVICE, self.number)
        conditions = list(dict.fromkeys(f"Condition/{row.remote_id}" for row in rows
                                        if row.kind == "Condition" and row.status == "sent"))
        resource = encounter_resource(self.visit, self.settings, ihs=ihs, remote_id=encounter_id,
                                      condition_ids=conditions)
        self.current_kind, self.current_ref = "Encounter", self.encounter_ref_key
        await self.client.update(resource)
        await self.record("Encounter", self.encounter_ref_key, "sent", remote_id=encounter_id,
                          detail={"status": "finished"})
        self.sent.append("Encounter finished")


CONNECTOR = ConnectorSpec(
    name="satusehat", destination=SatusehatConfig, create_destination=SatusehatConnector,
    destination_description="Report Encounter, Condition, Observation and Procedure to SATUSEHAT.")
