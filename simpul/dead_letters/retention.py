"""Retention: archive finished messages, then remove them from the hot store; restore them on demand.

A channel with a `retention:` block (see RetentionPolicy in engine/config/channel.py) lets its
messages leave the hot store once they are older than `retention.content`. One run:

1. selects messages that are **finished** — processed (routed, unrouted or rejected), no
   delivery pending, in flight or held, no dead letter open — and old enough, counting from
   `restored_at` for a message that was restored;
2. for each batch, reads the message with its deliveries, attempts, dead letters, edits and
   replay links, writes them to an archive file (archive.py: gzip, AES-256-GCM when the channel
   says `encrypt`) and fsyncs it;
3. only then, in ONE store transaction: records the `archives` row and the index entries,
   checks again that every message of the batch is still finished (a replay may have queued a
   delivery meanwhile: then the whole batch waits for the next run and its file is removed),
   deletes the rows, and writes the audit event.

So a row is deleted only when a durable file holds it, and a failed write deletes nothing. A
crash between the fsync and the commit leaves an unreferenced file (harmless: the rows are
still in the store and a later run archives them again).

After `retention.metadata`, the index entries of archived messages are removed as well; the
files and the `archives` rows (no patient data) stay.

Which channel governs a message: the channels of its deliveries and dead letters, or, for a
message that never reached a channel (unrouted, rejected), every channel on its source. If any
of them has no retention block (or is not loaded), the message stays. Otherwise the longest
`content` period wins, and that channel's archive settings are used.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, LargeBinary, Table, and_, delete, func, or_, select, update
from sqlalchemy.engine import Engine as Database

from simpul.dead_letters.archive import ArchiveKeys, decode_archive, encode_archive, read_header, write_archive_file
from simpul.dead_letters.audit import chain_head, record_audit
from simpul.engine.channel_runtime import ChannelRuntime
from simpul.engine.config.channel import RetentionPolicy
from simpul.engine.listeners import source_keys
from simpul.errors import ArchiveUnreadable, ConfigError, OperationRefused, StoreError
from simpul.store.database import inserted_id
from simpul.store.rows import Archive, archive_entry_row, archive_row
from simpul.store.schema import (
    archive_entries,
    archives,
    dead_letter_edits,
    dead_letters,
    deliveries,
    delivery_attempts,
    messages,
    replays,
)
from simpul.store.status import FINISHED_MESSAGE, UNFINISHED_DELIVERY, DeadLetterStatus

log = logging.getLogger("simpul.retention")

RETENTION_INTERVAL = 3600.0      # seconds between the engine's retention runs
FIRST_RUN_DELAY = 60.0           # after start-up, let recovery and the first deliveries go first
BATCH = 500                      # messages per archive file and per delete transaction
# Everything a message owns, in the order rows are written back on restore.
RECORD_TABLES: tuple[tuple[str, Table], ...] = (
    ("deliveries", deliveries), ("attempts", delivery_attempts), ("dead_letters", dead_letters),
    ("edits", dead_letter_edits), ("replays", replays))


# ---- which messages, under which channel's policy -------------------------------------------------
class Governance:
    """Channel policies and sources, as loaded; decides which channel governs a message."""

    def __init__(self, channels: Mapping[str, "ChannelRuntime"], base_dir: Path) -> None:
        self.base_dir = base_dir
        self.policies: dict[str, RetentionPolicy | None] = {
            name: runtime.channel.retention for name, runtime in channels.items()}
        self.by_source: dict[str, list[str]] = defaultdict(list)
        for name, runtime in channels.items():
            for key in source_keys(runtime.channel):
                self.by_source[key].append(name)

    @property
    def retained(self) -> dict[str, "RetentionPolicy"]:
        return {name: policy for name, policy in self.policies.items() if policy is not None}

    def governing(self, channels: set[str], source: str) -> str | None:
        names = channels or set(self.by_source.get(source, ()))
        if not names or any(self.policies.get(name) is None for name in names):
            return None
        return max(names, key=lambda name: (self.policies[name].content, name))  # type: ignore[union-attr]

    def directory(self, channel: str) -> Path:
        policy = self.retained[channel]
        folder = Path(policy.archive.directory)
        return folder if folder.is_absolute() else self.base_dir / folder


def _finished() -> Any:
    """SQL: the message is processed and nothing about it is waiting for work or a decision."""
    d, x, m = deliveries.c, dead_letters.c, messages.c
    return and_(m.status.in_(FINISHED_MESSAGE),
                ~select(d.id).where(d.message_id == m.id, d.status.in_(UNFINISHED_DELIVERY)).exists(),
                ~select(x.id).where(x.message_id == m.id, x.status == DeadLetterStatus.OPEN).exists())


def _message_channels(connection: Connection, ids: Sequence[int]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = defaultdict(set)
    for table in (deliveries, dead_letters):
        for row in connection.execute(select(table.c.message_id, table.c.channel)
                                      .where(table.c.message_id.in_(ids)).distinct()):
            found[row.message_id].add(row.channel)
    return found


# ---- archive run ------------------------------------------------------------------------------------
@dataclass
class ArchiveOutcome:
    channel: str
    messages: int
    received_from: float
    received_until: float
    encrypted: bool
    archive_id: int | None = None
    path: str | None = None
    bytes: int | None = None


@dataclass
class RetentionReport:
    dry_run: bool
    archived: list[ArchiveOutcome] = field(default_factory=list)
    index_entries_removed: dict[str, int] = field(default_factory=dict)
    batches_deferred: int = 0          # a message of the batch got new work meanwhile: next run
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def messages_archived(self) -> int:
        return sum(item.messages for item in self.archived)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "messages_archived": self.messages_archived,
                "archives": [asdict(item) for item in self.archived],
                "index_entries_removed": self.index_entries_removed, "batches_deferred": self.batches_deferred,
                "failures": self.failures}


class _ChangedMeanwhile(Exception):
    pass


def run_retention(db: Database, channels: Mapping[str, "ChannelRuntime"], *, base_dir: Path, actor: str,
                  dry_run: bool = False, now: float | None = None, batch: int = BATCH,
                  environ: Mapping[str, str] | None = None) -> RetentionReport:
    """One retention pass over every channel with a policy (see the module docstring).

    Blocking (file and database I/O): call it from a thread in async code. Failures of one
    channel (unwritable folder, missing key) are reported in `failures` and leave that
    channel's messages in the store; other channels go on.
    """
    now = time.time() if now is None else now
    report = RetentionReport(dry_run)
    governance = Governance(channels, base_dir)
    retained = governance.retained
    if not retained:
        return report
    keys, key_problem = _keys_or_problem(environ)
    blocked: set[str] = set()
    for name, policy in retained.items():
        if policy.archive.encrypt and keys is None:
            report.failures.append({"channel": name, "error": key_problem or "encrypt: true needs "
                                    "SIMPUL_ARCHIVE_KEYS (id:base64key,...); nothing archived"})
            blocked.add(name)
    cutoff = now - min(policy.content for policy in retained.values())
    retained_sources = [source for source, names in governance.by_source.items()
                        if any(name in retained for name in names)]
    m = messages.c
    last_id = 0
    groups: dict[str, list[Any]] = defaultdict(list)
    while True:
        with db.connect() as connection:
            candidates = list(connection.execute(
                select(m.id, m.source, m.received_at, m.restored_at)
                .where(m.id > last_id, func.coalesce(m.restored_at, m.received_at) < cutoff, _finished(),
                       or_(select(deliveries.c.id).where(deliveries.c.message_id == m.id,
                                                         deliveries.c.channel.in_(retained)).exists(),
                           select(dead_letters.c.id).where(dead_letters.c.message_id == m.id,
                                                           dead_letters.c.channel.in_(retained)).exists(),
                           m.source.in_(retained_sources)))
                .order_by(m.id).limit(batch)))
            if not candidates:
                break
            last_id = candidates[-1].id
            owners = _message_channels(connection, [row.id for row in candidates])
        for row in candidates:
            channel = governance.governing(owners.get(row.id, set()), row.source)
            if channel is None or channel in blocked:
                continue
            if (row.restored_at or row.received_at) >= now - retained[channel].content:
                continue
            groups[channel].append(row.id)
            if len(groups[channel]) >= batch:
                _archive_batch(db, governance, channel, groups.pop(channel), keys, actor, now, report, blocked)
    for channel, ids in groups.items():
        _archive_batch(db, governance, channel, ids, keys, actor, now, report, blocked)
    _remove_expired_index_entries(db, retained, actor, now, report)
    return report


def _keys_or_problem(environ: Mapping[str, str] | None) -> tuple[ArchiveKeys | None, str | None]:
    try:
        return ArchiveKeys.from_environment(environ), None
    except ConfigError as exc:
        return None, f"{exc}; nothing archived"


def _archive_batch(db: Database, governance: Governance, channel: str, ids: list[int], keys: ArchiveKeys | None,
                   actor: str, now: float, report: RetentionReport, blocked: set[str]) -> None:
    if channel in blocked:
        return
    policy = governance.retained[channel]
    with db.connect() as connection:
        records = read_records(connection, ids)
        # The audit chain's head goes into the file: a later removal of the trail's tail shows
        # as a recorded head that is no longer in the chain (`simpul audit verify`).
        head = chain_head(connection)
    if not records:
        return
    received = [record["message"]["received_at"] for record in records]
    outcome = ArchiveOutcome(channel, len(records), min(received), max(received), policy.archive.encrypt)
    if report.dry_run:
        report.archived.append(outcome)
        return
    stamp = datetime.fromtimestamp(now, timezone.utc)
    encoded = encode_archive(records, {"channel": channel, "created_at": now, "messages": len(records),
                                       "received_from": outcome.received_from,
                                       "received_until": outcome.received_until, "audit_chain_head": head},
                             keys if policy.archive.encrypt else None)
    folder = governance.directory(channel) / channel / stamp.strftime("%Y-%m")
    name = f"{channel}-{stamp.strftime('%Y%m%dT%H%M%SZ')}-{encoded.sha256[:16]}.jsonl.gz" + (
        ".aes" if encoded.key_id else "")
    try:
        path = write_archive_file(folder, name, encoded.data)
    except StoreError as exc:
        report.failures.append({"channel": channel, "error": f"{exc}; nothing deleted"})
        blocked.add(channel)
        return
    outcome.path, outcome.bytes = str(path), len(encoded.data)
    try:
        with db.begin() as connection:
            outcome.archive_id = _commit_archive(connection, channel, ids, records, outcome, encoded.sha256,
                                                 encoded.key_id, actor, now)
    except _ChangedMeanwhile:
        # Rolled back by us, so no row points at the file: remove it, the batch waits for the next run.
        path.unlink(missing_ok=True)
        report.batches_deferred += 1
        return
    except Exception as exc:  # noqa: BLE001 - a failed commit must not stop other channels
        # The commit may or may not have happened (a lost connection during COMMIT), so the
        # file stays: deleting it could lose the only copy of rows that are gone.
        report.failures.append({"channel": channel, "error": f"store transaction failed "
                                f"({type(exc).__name__}); archive file kept at {path}"})
        blocked.add(channel)
        return
    report.archived.append(outcome)


def _commit_archive(connection: Connection, channel: str, ids: list[int], records: list[dict[str, Any]],
                    outcome: ArchiveOutcome, sha256: str, key_id: str | None, actor: str, now: float) -> int:
    # Write first: on SQLite that takes the write lock before the re-check reads, so no other
    # writer can queue work for these messages between the check and the delete.
    assert outcome.path is not None, "the archive file is written before its row"
    archive_id = inserted_id(connection.execute(archives.insert().values(archive_row(
        at=now, actor=actor, channel=channel, path=outcome.path, sha256=sha256, messages=len(ids),
        received_from=outcome.received_from, received_until=outcome.received_until, key_id=key_id,
        size=outcome.bytes))))
    m = messages.c
    still = {row.id for row in connection.execute(
        select(m.id).where(m.id.in_(ids), _finished()).with_for_update())}
    if still != set(ids):
        raise _ChangedMeanwhile()
    connection.execute(archive_entries.insert(), [archive_entry_row(
        archive_id=archive_id, message_id=r["message"]["id"], channel=channel,
        received_at=r["message"]["received_at"], message_type=r["message"]["message_type"],
        control_id=r["message"]["control_id"], patient_id=r["message"]["patient_id"]) for r in records])
    _delete_messages(connection, ids)
    record_audit(connection, actor=actor, action="retention.archive", target=f"archives:{archive_id}",
                 reason=f"retention: finished messages older than the channel's content period ({channel})",
                 detail={"count": len(ids), "channel": channel, "path": outcome.path, "key_id": key_id,
                         "message_ids": ids[:1000]})
    return archive_id


def _delete_messages(connection: Connection, ids: list[int]) -> None:
    """Delete messages and every row that refers to them, children first (foreign keys)."""
    delivery_ids = select(deliveries.c.id).where(deliveries.c.message_id.in_(ids)).scalar_subquery()
    dead_letter_ids = select(dead_letters.c.id).where(dead_letters.c.message_id.in_(ids)).scalar_subquery()
    r = replays.c
    connection.execute(delete(replays).where(or_(r.dead_letter_id.in_(dead_letter_ids),
                                                 r.delivery_id.in_(delivery_ids),
                                                 r.original_delivery_id.in_(delivery_ids))))
    connection.execute(delete(dead_letter_edits).where(dead_letter_edits.c.dead_letter_id.in_(dead_letter_ids)))
    connection.execute(delete(dead_letters).where(dead_letters.c.message_id.in_(ids)))
    connection.execute(delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(delivery_ids)))
    connection.execute(delete(deliveries).where(deliveries.c.message_id.in_(ids)))
    connection.execute(delete(messages).where(messages.c.id.in_(ids)))


def _remove_expired_index_entries(db: Database, retained: Mapping[str, "RetentionPolicy"], actor: str,
                                  now: float, report: RetentionReport) -> None:
    e = archive_entries.c
    for channel, policy in retained.items():
        if policy.metadata is None:
            continue
        expired = and_(e.channel == channel, e.received_at < now - policy.metadata)
        with db.begin() as connection:
            count = connection.execute(select(func.count()).select_from(archive_entries).where(expired)).scalar_one()
            if not count:
                continue
            report.index_entries_removed[channel] = int(count)
            if report.dry_run:
                continue
            connection.execute(delete(archive_entries).where(expired))
            record_audit(connection, actor=actor, action="retention.purge", target=f"archive_entries:{channel}",
                         reason="retention: archive index entries older than the channel's metadata period",
                         detail={"count": int(count), "channel": channel})


# ---- records: rows <-> JSON ---------------------------------------------------------------------------
def _row_json(table: Table, row: Any) -> dict[str, Any]:
    values = {}
    for column in table.columns:
        value = getattr(row, column.name)
        if isinstance(column.type, LargeBinary) and value is not None:
            value = base64.b64encode(bytes(value)).decode()
        values[str(column.name)] = value          # orjson takes plain str keys only (not quoted_name)
    return values


def _row_values(table: Table, data: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of _row_json; keys the current schema does not know are left out."""
    values = {}
    for column in table.columns:
        if column.name not in data:
            continue
        value = data[column.name]
        if isinstance(column.type, LargeBinary) and value is not None:
            value = base64.b64decode(value)
        values[column.name] = value
    return values


def read_records(connection: Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Each message with everything that refers to it, as JSON-able dicts (bytes base64)."""
    records: dict[int, dict[str, Any]] = {}
    for row in connection.execute(select(messages).where(messages.c.id.in_(ids)).order_by(messages.c.id)):
        records[row.id] = {"message": _row_json(messages, row), **{name: [] for name, _ in RECORD_TABLES}}
    delivery_owner: dict[int, int] = {}
    dead_letter_owner: dict[int, int] = {}
    for row in connection.execute(select(deliveries).where(deliveries.c.message_id.in_(ids))
                                  .order_by(deliveries.c.id)):
        delivery_owner[row.id] = row.message_id
        records[row.message_id]["deliveries"].append(_row_json(deliveries, row))
    for row in connection.execute(select(dead_letters).where(dead_letters.c.message_id.in_(ids))
                                  .order_by(dead_letters.c.id)):
        dead_letter_owner[row.id] = row.message_id
        records[row.message_id]["dead_letters"].append(_row_json(dead_letters, row))
    if delivery_owner:
        for row in connection.execute(select(delivery_attempts).where(
                delivery_attempts.c.delivery_id.in_(list(delivery_owner))).order_by(delivery_attempts.c.id)):
            records[delivery_owner[row.delivery_id]]["attempts"].append(_row_json(delivery_attempts, row))
    if dead_letter_owner:
        for row in connection.execute(select(dead_letter_edits).where(
                dead_letter_edits.c.dead_letter_id.in_(list(dead_letter_owner))).order_by(dead_letter_edits.c.id)):
            records[dead_letter_owner[row.dead_letter_id]]["edits"].append(_row_json(dead_letter_edits, row))
        for row in connection.execute(select(replays).where(
                replays.c.dead_letter_id.in_(list(dead_letter_owner))).order_by(replays.c.id)):
            records[dead_letter_owner[row.dead_letter_id]]["replays"].append(_row_json(replays, row))
    return [records[key] for key in sorted(records)]


# ---- list and find --------------------------------------------------------------------------------------
def archived_chain_heads(connection: Connection) -> list[tuple[str, dict[str, Any]]]:
    """(file, audit chain head) of every archive file still on disk whose header records one.

    Only the plain header line is read (it is outside the encryption), so no key is needed."""
    heads = []
    for row in connection.execute(select(archives.c.id, archives.c.path).order_by(archives.c.id)):
        try:
            with open(row.path, "rb") as file:
                header = read_header(file.readline())
        except (OSError, ArchiveUnreadable):
            continue
        head = header.get("audit_chain_head")
        if isinstance(head, dict):
            heads.append((f"archive {row.id} ({row.path})", head))
    return heads


def list_archives(connection: Connection, *, channel: str | None = None, limit: int = 50,
                  offset: int = 0) -> dict[str, Any]:
    """Archive files, newest first (no patient data: paths, hashes, counts, time ranges)."""
    a = archives.c
    where = [a.channel == channel] if channel else []
    total = connection.execute(select(func.count()).select_from(archives).where(*where)).scalar_one()
    rows = connection.execute(select(archives).where(*where).order_by(a.id.desc()).limit(limit).offset(offset))
    return {"total": total, "items": [dict(row._mapping) for row in rows]}


def find_archived(connection: Connection, *, control_id: str | None = None, patient_id: str | None = None,
                  archive_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Index entries of archived messages (newest archive first)."""
    e = archive_entries.c
    where = [column == value for column, value in ((e.control_id, control_id), (e.patient_id, patient_id),
                                                   (e.archive_id, archive_id)) if value]
    if not where:
        raise OperationRefused("say which archived messages: --control-id, --patient-id or an archive id")
    rows = connection.execute(select(archive_entries).where(*where).order_by(e.archive_id.desc(), e.id).limit(limit))
    return [dict(row._mapping) for row in rows]


# ---- restore -------------------------------------------------------------------------------------------
@dataclass
class RestoreResult:
    audit_event_id: int
    restored: list[dict[str, Any]]          # {message_id, archived_as, control_id, archive_id}
    already_in_store: int
    archives: list[int]


def restore_archived(db: Database, *, actor: str, reason: str, archive_id: int | None = None,
                     control_id: str | None = None, patient_id: str | None = None,
                     environ: Mapping[str, str] | None = None, now: float | None = None) -> RestoreResult:
    """Bring archived messages back into the hot store (rows as they were), so they can be replayed.

    Choose a whole archive by id, or messages by control id / patient id (found through the
    index). Rows keep their ids when those are free, else get new ones (links follow). Restored
    messages get `restored_at`, so retention waits a full content period before archiving them
    again. One transaction with the audit event. Blocking: call from a thread in async code.
    """
    if not reason or not reason.strip():
        raise OperationRefused("a reason is required to restore (--reason)")
    if archive_id is None and not control_id and not patient_id:
        raise OperationRefused("say what to restore: an archive id, --control-id or --patient-id")
    now = time.time() if now is None else now
    keys = ArchiveKeys.from_environment(environ)
    with db.connect() as connection:
        if archive_id is not None:
            ids = [archive_id]
        else:
            ids = sorted({entry["archive_id"] for entry in find_archived(
                connection, control_id=control_id, patient_id=patient_id, limit=100_000)}, reverse=True)
        rows = {archive.id: archive for archive in map(Archive.from_row, connection.execute(
            select(archives).where(archives.c.id.in_(ids))))}
    if archive_id is not None and archive_id not in rows:
        raise OperationRefused(f"no archive {archive_id}")
    if not rows:
        raise OperationRefused("no archived message matches (the index may have expired: restore by archive id)")
    chosen: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
    for number in sorted(rows, reverse=True):                 # newest archive of a message wins
        for record in _read_archive(rows[number], keys):
            message = record["message"]
            if control_id and message["control_id"] != control_id:
                continue
            if patient_id and message["patient_id"] != patient_id:
                continue
            chosen.setdefault((message["source"], message["received_at"], message["control_id"]), (number, record))
    if not chosen:
        raise OperationRefused("no archived message matches in the selected archive(s)")
    restored: list[dict[str, Any]] = []
    present = 0
    with db.begin() as connection:
        for number, record in chosen.values():
            message = record["message"]
            existing = connection.execute(select(messages.c.id).where(
                messages.c.source == message["source"], messages.c.received_at == message["received_at"],
                messages.c.control_id == message["control_id"])).first()
            if existing is not None:
                present += 1
                continue
            new_id = _insert_record(connection, record, now)
            restored.append({"message_id": new_id, "archived_as": message["id"],
                             "control_id": message["control_id"], "archive_id": number})
        used = sorted({item["archive_id"] for item in restored})
        if used:
            connection.execute(update(archives).where(archives.c.id.in_(used)).values(restored_at=now))
        audit_id = record_audit(connection, actor=actor, action="retention.restore",
                                target="archives:" + ",".join(str(n) for n in used or sorted(rows)),
                                reason=reason, detail={"count": len(restored), "already_in_store": present,
                                                       "message_ids": [r["message_id"] for r in restored][:1000]})
    return RestoreResult(audit_id, restored, present, used)


def _read_archive(row: Archive, keys: ArchiveKeys | None) -> list[dict[str, Any]]:
    name = f"archive {row.id}"
    try:
        data = Path(row.path).read_bytes()
    except OSError as exc:
        raise StoreError(f"{name}: cannot read {row.path}: {exc.strerror or type(exc).__name__}") from None
    return list(decode_archive(data, keys, expected_sha256=row.sha256, name=name))


def _ids_free(connection: Connection, record: Mapping[str, Any]) -> bool:
    checks = [(messages, [record["message"]["id"]])] + [
        (table, [row["id"] for row in record[name]]) for name, table in RECORD_TABLES]
    for table, ids in checks:
        if ids and connection.execute(select(func.count()).select_from(table)
                                      .where(table.c.id.in_(ids))).scalar_one():
            return False
    return True


def _insert_record(connection: Connection, record: Mapping[str, Any], now: float) -> int:
    """Write one archived message back; returns its id in the hot store."""
    keep_ids = _ids_free(connection, record)
    new: dict[str, dict[int, int]] = defaultdict(dict)

    def put(table: Table, values: dict[str, Any]) -> int:
        old = values["id"]
        if not keep_ids:
            values = {key: value for key, value in values.items() if key != "id"}
        result = connection.execute(table.insert().values(**values))
        return old if keep_ids else inserted_id(result)

    def same(kind: str, old: int | None) -> int | None:
        return None if old is None else new[kind].get(old, old)

    message_id = put(messages, {**_row_values(messages, record["message"]), "restored_at": now})
    for data in record["deliveries"]:
        values = _row_values(deliveries, data)
        values.update(message_id=message_id, replay_of=same("deliveries", values.get("replay_of")),
                      ordered_as=same("deliveries", values.get("ordered_as")))
        new["deliveries"][data["id"]] = put(deliveries, values)
    for data in record["attempts"]:
        values = _row_values(delivery_attempts, data)
        values["delivery_id"] = same("deliveries", values["delivery_id"])
        put(delivery_attempts, values)
    for data in record["dead_letters"]:
        values = _row_values(dead_letters, data)
        values.update(message_id=message_id, delivery_id=same("deliveries", values.get("delivery_id")))
        new["dead_letters"][data["id"]] = put(dead_letters, values)
    for data in record["edits"]:
        values = _row_values(dead_letter_edits, data)
        values["dead_letter_id"] = same("dead_letters", values["dead_letter_id"])
        new["edits"][data["id"]] = put(dead_letter_edits, values)
    for data in record["replays"]:
        values = _row_values(replays, data)
        values.update(dead_letter_id=same("dead_letters", values["dead_letter_id"]),
                      delivery_id=same("deliveries", values["delivery_id"]),
                      original_delivery_id=same("deliveries", values.get("original_delivery_id")),
                      edit_id=same("edits", values.get("edit_id")))
        put(replays, values)
    return message_id


# ---- in the engine --------------------------------------------------------------------------------------
async def run_retention_periodically(engine: Any, *, interval: float = RETENTION_INTERVAL,
                                     first_delay: float = FIRST_RUN_DELAY) -> None:
    """The engine's retention task: a pass every `interval` while any loaded channel has a policy.

    Logs counts and channel names only. A failing pass is logged and retried at the next interval.
    """

    await asyncio.sleep(first_delay)
    while True:
        channels = dict(engine.channels)
        if any(runtime.channel.retention is not None for runtime in channels.values()):
            try:
                report = await asyncio.to_thread(run_retention, engine.db, channels,
                                                 base_dir=engine.settings.base_dir, actor="simpul-retention")
                if report.messages_archived or report.index_entries_removed:
                    log.info("retention pass", extra={"messages_archived": report.messages_archived,
                                                      "archives": len(report.archived),
                                                      "index_entries_removed": report.index_entries_removed})
                for failure in report.failures:
                    log.error("retention: channel not archived", extra=failure)
            except Exception as exc:  # noqa: BLE001 - the engine keeps running; the next pass retries
                log.error("retention pass failed", extra={"error_class": type(exc).__name__})
        await asyncio.sleep(interval)
