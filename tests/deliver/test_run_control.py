"""Pause (hold), resume (release) and cancel of a run: the delivery loop honours a person's say."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import pytest
from dispatch_data import DISPATCH_NOW
from sqlalchemy import Engine, select

from newsletter.config import Settings
from newsletter.deliver import MemoryTransport
from newsletter.deliver.dispatch import DeliveryError, DispatchPolicy, dispatch_run, resume
from newsletter.deliver.transport import OutgoingMessage, SendResult
from newsletter.store import runs
from newsletter.tables import message_table, run_table

NOW = DISPATCH_NOW
SETTINGS = Settings()


class Ticker:
    """A monotonic clock that moves one second per reading (the loop re-checks each time)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def statuses(engine: Engine, run_id: int) -> Counter[tuple[str, str | None]]:
    m = message_table.c
    with engine.connect() as c:
        rows = c.execute(select(m.status, m.reason).where(m.run_id == run_id)).all()
    return Counter((str(s), r if s == "skipped" and r == "cancelled" else None) for s, r in rows)


def run_row(engine: Engine, run_id: int) -> tuple[str, object]:
    r = run_table.c
    with engine.connect() as c:
        return tuple(c.execute(select(r.status, r.finished_at).where(r.id == run_id)).one())  # type: ignore[return-value]


class ActAfter(MemoryTransport):
    """A memory transport that, after its n-th message, does what a person does in the UI."""

    def __init__(self, n: int, act: Callable[[], object]) -> None:
        super().__init__()
        self.n, self.act = n, act

    def send_many(
        self, messages: Iterable[OutgoingMessage], *, on_result: Callable | None = None
    ) -> list[SendResult]:
        out = []
        for message in messages:
            result = self.send(message)
            if on_result:
                on_result(result)
            out.append(result)
            if len(self.sent) == self.n:
                self.act()
        return out


@pytest.fixture
def run_id(
    engine: Engine, dispatch_world: Callable[..., None], plan_weekly: Callable[..., int]
) -> int:
    dispatch_world(engine, subscribers=24)
    return plan_weekly(engine, shard_count=1)


def _planned(engine: Engine, run_id: int) -> int:
    return statuses(engine, run_id)[("planned", None)]


def test_a_held_run_stops_at_the_next_check_and_resumes_where_it_stopped(
    engine: Engine, run_id: int
) -> None:
    todo = _planned(engine, run_id)
    assert todo >= 15
    transport = ActAfter(5, lambda: runs.hold_run(engine, run_id=run_id))
    policy = DispatchPolicy(monotonic=Ticker())
    result = dispatch_run(
        engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=policy
    )
    assert result.halted == "held" and result.sent == 5 == len(transport.sent)
    assert run_row(engine, run_id)[0] == "held"  # the loop's "delivered" did not overwrite it
    assert _planned(engine, run_id) == todo - 5
    again = dispatch_run(
        engine, run_id=run_id, transport=MemoryTransport(), settings=SETTINGS, now=NOW
    )
    assert again.halted == "held" and again.sent == 0  # a held run is not delivered
    with pytest.raises(DeliveryError, match="paused from the web UI"):
        resume(engine, run_id=run_id, transport=MemoryTransport(), settings=SETTINGS, now=NOW)
    assert runs.release_run(engine, run_id=run_id) is True
    assert runs.run_status(engine, run_id=run_id) == "waiting"
    rest = MemoryTransport()
    done = dispatch_run(engine, run_id=run_id, transport=rest, settings=SETTINGS, now=NOW)
    assert done.halted is None and done.sent == todo - 5
    sent = {int(m.key) for m in transport.sent} | {int(m.key) for m in rest.sent}
    assert len(sent) == todo  # every message exactly once across the pause
    assert run_row(engine, run_id)[0] == "delivered"
    assert runs.hold_run(engine, run_id=run_id) is False  # nothing left to pause
    assert runs.release_run(engine, run_id=run_id) is False


@pytest.mark.parametrize("claim_batch", [1, 200])
def test_cancel_skips_every_unsent_message_and_no_pass_sends_them(
    engine: Engine, run_id: int, claim_batch: int
) -> None:
    todo = _planned(engine, run_id)
    skipped: list[int | None] = []
    transport = ActAfter(3, lambda: skipped.append(runs.cancel_run(engine, run_id=run_id, now=NOW)))
    result = dispatch_run(
        engine,
        run_id=run_id,
        transport=transport,
        settings=SETTINGS,
        now=NOW,
        policy=DispatchPolicy(monotonic=Ticker(), claim_batch=claim_batch),
    )
    assert result.halted == "cancelled" and result.sent == 3
    # the cancel skips what is not claimed; a claimed batch's unsent rest is skipped by the
    # loop when it sees the cancel (before handing it to the transport)
    if claim_batch == 1:
        assert skipped == [todo - 3]
    else:
        assert skipped[0] is not None and skipped[0] < todo - 3
    counts = statuses(engine, run_id)
    assert counts[("sent", None)] == 3 and counts[("skipped", "cancelled")] == todo - 3
    assert counts[("planned", None)] == 0
    status, finished = run_row(engine, run_id)
    assert status == "cancelled" and finished is not None
    later = MemoryTransport()
    again = dispatch_run(engine, run_id=run_id, transport=later, settings=SETTINGS, now=NOW)
    assert again.sent == 0 and again.halted == "cancelled"
    assert later.sent == []
    with pytest.raises(DeliveryError, match="cancelled"):
        resume(engine, run_id=run_id, transport=later, settings=SETTINGS, now=NOW)
    assert runs.cancel_run(engine, run_id=run_id, now=NOW) is None  # twice: nothing to do
    assert runs.hold_run(engine, run_id=run_id) is False


def test_replanning_a_held_run_keeps_it_held(
    engine: Engine, run_id: int, plan_weekly: Callable[..., int]
) -> None:
    assert runs.hold_run(engine, run_id=run_id)
    assert plan_weekly(engine, shard_count=1) == run_id
    assert runs.run_status(engine, run_id=run_id) == "held"
    assert runs.run_status(engine, run_id=run_id + 999) is None
