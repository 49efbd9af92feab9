"""What one claim takes: a key's waiting run in FIFO position, fair turns between keys, and
index seeks only, so its cost does not grow with the backlog (real SQLite and PostgreSQL)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from simpul.engine.claims import Claim, claim
from simpul.store.database import open_database
from simpul.store.rows import delivery_row, message_row
from simpul.store.schema import deliveries, messages
from simpul.store.status import DeliveryStatus, MessageStatus
from simpul.store.writer import insert_rows

NOW = 1_000_000.0


@pytest.fixture
def store(database_url: str) -> Iterator[sa.Engine]:
    engine = open_database(database_url)
    yield engine
    engine.dispose()


def queue(engine: sa.Engine, keys: list[str], *, destination: str = "lis", due: float = NOW - 1) -> list[int]:
    """One message and one pending delivery per entry of `keys` (its order key), in that order."""
    with engine.begin() as connection:
        first = connection.execute(sa.select(sa.func.coalesce(sa.func.max(messages.c.id), 0))).scalar_one()
        insert_rows(connection, messages, [message_row("mllp:test", MessageStatus.ROUTED, NOW, b"MSH|^~\\&|", None,
                                                       "AA", charset="utf-8", content_hash="") for _ in keys])
        ids = list(connection.execute(sa.select(messages.c.id).where(messages.c.id > first)
                                      .order_by(messages.c.id)).scalars())
        connection.execute(messages.update().where(messages.c.id > first).values(control_id=messages.c.id))
        start = connection.execute(sa.select(sa.func.coalesce(sa.func.max(deliveries.c.id), 0))).scalar_one()
        insert_rows(connection, deliveries, [delivery_row(
            message_id=message_id, channel="adt", destination=destination, order_key=key, payload=b"x",
            content_type="x-application/hl7-v2+er7", created_at=NOW, next_attempt_at=due)
            for message_id, key in zip(ids, keys)])
        return list(connection.execute(sa.select(deliveries.c.id).where(deliveries.c.id > start)
                                       .order_by(deliveries.c.id)).scalars())


def take(engine: sa.Engine, *, runs: int = 8, budget: int = 10_000, run_length: int = 100,
         after: str | None = None, ordered: bool = True, destination: str = "lis") -> Claim:
    with engine.begin() as connection:
        return claim(connection, channel="adt", label=destination, ordered=ordered, runs=runs, budget=budget,
                     run_length=run_length, sending=[], after=after, now=NOW, lease_until=NOW + 60,
                     owner="test", token="t1")


def finish(engine: sa.Engine, ids: list[int], status: DeliveryStatus = DeliveryStatus.DELIVERED) -> None:
    with engine.begin() as connection:
        connection.execute(deliveries.update().where(deliveries.c.id.in_(ids)).values(status=status))


def ids_of(taken: Claim) -> list[list[int]]:
    return [[item.id for item in run] for run in taken.runs]


def test_a_key_s_waiting_deliveries_are_taken_as_one_run_in_fifo_order(store: sa.Engine) -> None:
    ids = queue(store, ["P1"] * 250)
    taken = take(store, run_length=100)
    assert ids_of(taken) == [ids[:100]]
    # While the run is in flight the key is blocked: nothing more of it is taken.
    assert take(store).runs == []
    finish(store, ids[:100])
    assert ids_of(take(store, run_length=100)) == [ids[100:200]]


def test_runs_for_several_keys_and_the_budget_caps_the_total(store: sa.Engine) -> None:
    ids = queue(store, ["A", "B", "C"] * 4)
    taken = take(store, runs=2, budget=6)
    assert [len(run) for run in taken.runs] == [4, 2]
    assert ids_of(taken)[0] == [ids[0], ids[3], ids[6], ids[9]]          # A's four, in order
    assert ids_of(taken)[1] == [ids[1], ids[4]]                          # B's first two (budget)


def test_keys_take_turns_after_the_last_key_claimed(store: sa.Engine) -> None:
    queue(store, ["A", "B", "C"] * 3)
    first = take(store, runs=1, run_length=1)
    second = take(store, runs=1, run_length=1, after=first.last_key)
    third = take(store, runs=1, run_length=1, after=second.last_key)
    assert [first.last_key, second.last_key, third.last_key] == ["A", "B", "C"]


def test_messages_without_a_key_value_are_claimed_too(store: sa.Engine) -> None:
    ids = queue(store, ["", "", "Z"])
    assert sorted(ids_of(take(store))) == [[ids[0], ids[1]], [ids[2]]]
    queue(store, ["", "Y"])
    assert take(store, after="Z").runs != []     # the scan wraps around to "" and to "Y"


def test_a_run_stops_at_a_delivery_waiting_for_its_retry(store: sa.Engine) -> None:
    ids = queue(store, ["P1"] * 5)
    with store.begin() as connection:
        connection.execute(deliveries.update().where(deliveries.c.id == ids[2]).values(next_attempt_at=NOW + 30))
    assert ids_of(take(store)) == [ids[:2]]


def test_a_key_whose_head_waits_for_a_retry_does_not_hold_back_other_keys(store: sa.Engine) -> None:
    waiting = queue(store, ["SLOW"] * 200, due=NOW + 30)
    ready = queue(store, ["FAST"] * 3)
    taken = take(store)
    assert ids_of(taken) == [ready]
    assert waiting[0] not in {item.id for run in taken.runs for item in run}


def test_a_replay_takes_the_fifo_place_of_the_held_delivery(store: sa.Engine) -> None:
    ids = queue(store, ["P1"] * 3)
    finish(store, [ids[0]], DeliveryStatus.DEAD)
    replay = queue(store, ["P1"])[0]
    with store.begin() as connection:
        connection.execute(deliveries.update().where(deliveries.c.id == replay).values(ordered_as=ids[0]))
    assert ids_of(take(store)) == [[replay, ids[1], ids[2]]]


def test_unordered_destinations_claim_single_deliveries_in_id_order(store: sa.Engine) -> None:
    ids = queue(store, [f"#{n}" for n in range(10)])
    assert ids_of(take(store, ordered=False, runs=4)) == [[ids[0]], [ids[1]], [ids[2]], [ids[3]]]


def test_expired_leases_go_back_to_pending_in_their_place(store: sa.Engine) -> None:
    ids = queue(store, ["P1"] * 4)
    with store.begin() as connection:
        connection.execute(deliveries.update().where(deliveries.c.id.in_(ids[:2])).values(
            status=DeliveryStatus.IN_FLIGHT, lease_until=NOW - 1, lease_token="dead", lease_owner="gone"))
    assert ids_of(take(store)) == [ids]
    with store.connect() as connection:
        tokens = set(connection.execute(sa.select(deliveries.c.lease_token).where(deliveries.c.id.in_(ids))).scalars())
    assert tokens == {"t1"}


def _plans(engine: sa.Engine) -> list[str]:
    """SQLite's query plan of every statement a claim runs."""
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        take(engine)
        take(engine, ordered=False)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        for statement, parameters in statements:
            plans.extend(row[3] for row in driver.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))
    return plans


def test_every_claim_statement_seeks_an_index_and_never_scans_the_queue(tmp_path: Any) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'claims.db'}")
    try:
        queue(engine, ["P1"] * 50 + [f"K{n}" for n in range(50)])
        plans = _plans(engine)
    finally:
        engine.dispose()
    assert plans, "no statements captured"
    scans = [plan for plan in plans if plan.startswith("SCAN") and "deliveries" in plan]
    assert scans == [], plans


@pytest.mark.slow
def test_a_claim_costs_about_the_same_with_a_hundred_thousand_waiting_as_with_ten(tmp_path: Any) -> None:
    """Not a speed goal (that is bench/): a claim that read the backlog would be ~1000x slower."""
    def cost(waiting: int, keys: int) -> float:
        engine = open_database(f"sqlite:///{tmp_path / f'c{waiting}-{keys}.db'}")
        try:
            queue(engine, [f"K{n % keys}" for n in range(waiting)])
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                taken = take(engine, runs=8, run_length=1)
                best = min(best, time.perf_counter() - started)
                with engine.begin() as connection:     # put them back: every round claims the same
                    connection.execute(deliveries.update().where(deliveries.c.lease_token == "t1").values(
                        status=DeliveryStatus.PENDING, lease_token=None))
                assert taken.runs
            return best
        finally:
            engine.dispose()

    for keys in (1, 1000):
        small, large = cost(10 if keys == 1 else 1000, keys), cost(100_000, keys)
        print(f"\nclaim, {keys} key(s): {small * 1e3:.2f} ms at the small backlog, {large * 1e3:.2f} ms at 100,000")
        assert large < small * 20
