"""`load_mapping(spec)` -> a `Mapping` whose `map(text)` returns one FHIR transaction Bundle (plain dicts).

The fhir_to_* built-ins (and `passthrough`) take FHIR instead: the data of a CloudEvents message
(a FHIR resource or Bundle), through `map_fhir(data, event_id=...)`. `takes` says which input a
mapping reads and `output_content_type` what it writes.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import pathlib
from collections import Counter
from types import ModuleType
from typing import Any, Callable

import orjson

from simpul.errors import ConfigError, MappingError, MessageError, NothingToMap, UnsupportedMessageType
from simpul.mappings import datatypes as dt
from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.mappings.fhir_to_v2 import build_mfn_m02, build_oml_o21, build_orm_o01
from simpul.mappings.messages import message_map
from simpul.mappings.options import MappingSpec
from simpul.mappings.report import MapReport, account
from simpul.mappings.segments.provenance import map_provenance
from simpul.mappings.validation import validate_bundle
from simpul.v2 import Message, MessageHeader, parse_message

FHIR_JSON = "application/fhir+json"
HL7_V2 = "x-application/hl7-v2+er7"
# FHIR input -> (writer, output content type); None writes the FHIR data unchanged.
FHIR_INPUT: dict[str, tuple[Callable[[dict[str, Any], MessageHeader], str] | None, str]] = {
    "fhir_to_oml_o21": (build_oml_o21, HL7_V2),
    "fhir_to_orm_o01": (build_orm_o01, HL7_V2),
    "fhir_to_mfn_m02": (build_mfn_m02, HL7_V2),
    "passthrough": (None, FHIR_JSON),
}
BUILTINS = ("v2_to_fhir", *FHIR_INPUT)

Transform = Callable[[Message, dict[str, Any]], dict[str, Any]]


class Mapping:
    """A loaded mapping; safe to share between tasks (no per-message state is kept on it
    except the running `unmapped_codes` counter, which only ever grows)."""

    takes = "hl7v2"
    output_content_type = FHIR_JSON

    def __init__(self, spec: MappingSpec, transform: Transform | None = None) -> None:
        self.spec = spec
        self.transform = transform
        self._identifier_systems = {**vocab.table("identifier-systems").entries, **spec.identifier_systems}
        self._code_systems = {**vocab.table("coding-systems").entries, **spec.code_systems}
        self._drop = {s.upper() for s in spec.drop_segments}
        self.unmapped_codes: Counter[str] = Counter()  # "<table>:<code>" seen without a table entry
        self.unmapped_fields: Counter[str] = Counter()  # "OBX-18" / "TQ1" left out, over all messages
        self.last_skipped: Counter[str] = Counter()
        self.last_report = MapReport()

    def parse(self, text: str) -> Message:
        """Read a decoded message with simpul.v2's rules (the listener's); MappingError when they
        refuse it, with the same segment, field and reason the listener's ACK gives."""
        try:
            return parse_message(text)
        except MessageError as exc:
            raise MappingError(exc.reason, segment=exc.segment, field=exc.field) from exc

    def map(self, text: str) -> dict[str, Any]:
        """Map one decoded HL7v2 message to a FHIR R4 transaction Bundle.

        Raises UnsupportedMessageType for a type with no map and MappingError (segment, field,
        reason; never patient data) for a message that cannot be mapped.
        """
        return self.map_message(self.parse(text))

    def map_with_report(self, text: str) -> tuple[dict[str, Any], MapReport]:
        """`map`, plus what the message held that is in no output (report.py)."""
        return self._map(self.parse(text))

    def map_message(self, msg: Message) -> dict[str, Any]:
        return self._map(msg)[0]

    def map_fhir(self, data: Any, *, event_id: str) -> bytes:
        raise MappingError(f"mapping '{self.spec.builtin}' reads HL7v2, and this event carries FHIR or JSON data: "
                           "use fhir_to_oml_o21, fhir_to_orm_o01 or passthrough")

    def _map(self, msg: Message) -> tuple[dict[str, Any], MapReport]:
        # The report is returned, not read back from self.last_report: one Mapping may serve
        # several threads (replay in the engine process while the pool maps in a thread).
        dropped: list[str] = []
        if self._drop:
            kept = [s for s in msg.segments if s.name not in self._drop or s.name == "MSH"]
            dropped = [s.name for s in msg.segments if s.name in self._drop and s.name != "MSH"]
            msg = Message(kept, msg.enc, msg.header)
        code, event = msg.message_code, msg.trigger_event
        fn = message_map(code, event)
        if fn is None:
            raise UnsupportedMessageType(f"unsupported message type {code}^{event}", segment="MSH", field=9)
        ctx = MapContext(msg, self.spec, self._identifier_systems, self._code_systems)
        if ctx.timezone is None:
            ctx.timezone = dt.offset_of(msg.msh.text(7))
        try:
            fn(ctx)
        except MappingError:
            raise
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            # A bug or an input shape no map foresaw: report where, never the values.
            raise MappingError(f"cannot map {code}^{event} ({type(exc).__name__})") from exc
        z = [] if self.spec.z_segments == "drop" else [
            msg.enc.field.join(s.fields) for s in msg.segments if s.name.startswith("Z")]
        map_provenance(ctx, z)
        report = account(msg, z_kept=self.spec.z_segments != "drop", dropped=dropped)
        report.counts.update(ctx.counts)
        report.skipped = ctx.skipped
        self.last_report = report
        self.unmapped_fields.update(report.not_mapped)
        self.unmapped_codes.update(ctx.unmapped)
        self.last_skipped = ctx.skipped
        bundle = ctx.builder.bundle()
        if self.transform is not None:
            bundle = self.transform(msg, bundle)
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise MappingError("the mapping module's transform() did not return a Bundle")
        if not bundle.get("entry"):
            raise NothingToMap(f"{code}^{event} holds no segment the map reads (nothing to send)",
                               segment="MSH", field=9)
        if self.spec.validate_output:
            validate_bundle(bundle)
        return bundle, report


class FhirInputMapping(Mapping):
    """A built-in map that reads FHIR (an event's data): to HL7v2 orders, or unchanged."""

    takes = "fhir"

    def __init__(self, spec: MappingSpec) -> None:
        super().__init__(spec)
        self.writer, self.output_content_type = FHIR_INPUT[spec.builtin]

    def _map(self, msg: Message) -> tuple[dict[str, Any], MapReport]:
        raise MappingError(f"mapping '{self.spec.builtin}' reads FHIR (the data of an event), not an HL7v2 message")

    def map_fhir(self, data: Any, *, event_id: str) -> bytes:
        if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
            raise MappingError(f"mapping '{self.spec.builtin}' needs a FHIR resource or Bundle as the event's data")
        if self.writer is None:
            return orjson.dumps(data)
        h = self.spec.header
        # MSH-10 from the event id (16 hex characters fit v2.5.1's 20): a redelivered or replayed
        # event gives the receiver the same control id, so it can drop the second copy.
        control_id = hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest().upper()
        header = MessageHeader(sending_application=h.sending_application, sending_facility=h.sending_facility,
                               receiving_application=h.receiving_application,
                               receiving_facility=h.receiving_facility, control_id=control_id)
        return self.writer(data, header).encode("utf-8")


def load_mapping(spec: MappingSpec | str | None, *, base_dir: pathlib.Path) -> Mapping:
    """Build the Mapping a channel names. `base_dir` is the channel file's folder (for `module:`).

    Raises ConfigError for an unknown builtin ("did you mean ...?") or a module that cannot be loaded.
    """
    if spec is None:
        spec = MappingSpec()
    elif isinstance(spec, str):
        spec = MappingSpec(builtin=spec)
    if spec.builtin not in BUILTINS:
        close = difflib.get_close_matches(spec.builtin, BUILTINS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(BUILTINS)}"
        raise ConfigError(f"mapping.builtin: unknown map '{spec.builtin}'{hint}")
    if spec.builtin in FHIR_INPUT:
        if spec.module:
            raise ConfigError(f"mapping.module: only v2_to_fhir takes an analyst module, not {spec.builtin}")
        return FhirInputMapping(spec)
    transform = _load_transform(spec.module, base_dir) if spec.module else None
    return Mapping(spec, transform)


def _load_transform(module: str, base_dir: pathlib.Path) -> Transform:
    path = (base_dir / module).resolve()
    if path.suffix != ".py" or not path.is_file():
        raise ConfigError(f"mapping.module: {module} is not a .py file under {base_dir}")
    name = "simpul_mapping_" + path.stem.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"mapping.module: cannot load {module}")
    mod: ModuleType = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:  # any error in analyst code is a configuration problem
        raise ConfigError(f"mapping.module: {module} failed to import: {type(exc).__name__}: {exc}") from exc
    fn = getattr(mod, "transform", None)
    if not callable(fn):
        raise ConfigError(f"mapping.module: {module} defines no transform(message, bundle) function")
    return fn
