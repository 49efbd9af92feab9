"""`load_mapping(spec)` -> a `Mapping` whose `map(text)` returns one FHIR transaction Bundle (plain dicts)."""
from __future__ import annotations

import difflib
import importlib.util
import pathlib
from collections import Counter
from types import ModuleType
from typing import Any, Callable

from simpul.errors import ConfigError, MappingError, MessageError, NothingToMap, UnsupportedMessageType
from simpul.mappings import datatypes as dt
from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.mappings.messages import message_map
from simpul.mappings.options import MappingSpec
from simpul.mappings.report import MapReport, account
from simpul.mappings.segments.provenance import map_provenance
from simpul.mappings.validation import validate_bundle
from simpul.v2 import Message, parse_message

BUILTINS = ("v2_to_fhir",)

Transform = Callable[[Message, dict[str, Any]], dict[str, Any]]


class Mapping:
    """A loaded mapping; safe to share between tasks (no per-message state is kept on it
    except the running `unmapped_codes` counter, which only ever grows)."""

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
