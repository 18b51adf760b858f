"""Where a run is, shard by shard: members planned, messages sent, failed, left to send.

A distributed run is many shard tasks on many workers; this is how an operator sees which
shards are done, which are under way (messages ``sending``) and which have not started. It
reads only the database, so it shows the same picture wherever the shards run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from newsletter.db import Engine
from newsletter.models import MessageStatus
from newsletter.plan.runs import load_members, load_plan
from newsletter.store.progress import recent_runs, shard_status_counts
from newsletter.store.runs import run_row

TO_SEND = (MessageStatus.planned, MessageStatus.rendered)
DONE = (MessageStatus.sent, MessageStatus.failed, MessageStatus.skipped)


@dataclass(frozen=True)
class ShardProgress:
    """One shard: its members, messages by status, and a one-word state."""

    shard: int
    members: int
    unplanned: int
    to_send: int
    sending: int
    sent: int
    failed: int
    skipped: int

    @property
    def state(self) -> str:
        """``planning`` (a member has no message), ``sending`` (a worker is on it),
        ``pending`` (messages wait to be sent), else ``done``."""
        if self.unplanned:
            return "planning"
        if self.sending:
            return "sending"
        return "pending" if self.to_send else "done"


@dataclass(frozen=True)
class RunProgress:
    """A run and its shards."""

    run_id: int
    campaign: str
    scheduled_for: Any
    status: str
    shards: list[ShardProgress] = field(default_factory=list)

    @property
    def shards_done(self) -> int:
        return sum(1 for s in self.shards if s.state == "done")

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "run_id": self.run_id,
            "campaign": self.campaign,
            "scheduled_for": self.scheduled_for.isoformat(),
            "status": self.status,
            "shards_done": self.shards_done,
            "shard_count": len(self.shards),
            "shards": [asdict(s) | {"state": s.state} for s in self.shards],
        }


def _shards(engine: Engine, run_id: int) -> list[ShardProgress]:
    plan = load_plan(engine, run_id=run_id)
    counts = shard_status_counts(engine, run_id=run_id)
    if plan is None:  # not prepared: only what the messages say
        count, per_shard = max(counts, default=-1) + 1, None
    else:
        count = plan.shard_count
        ids = load_members(engine, run_id=run_id)
        per_shard = np.bincount(np.asarray(ids, dtype=np.int64) % count, minlength=count)
    out = []
    for shard in range(count):
        c = counts.get(shard, {})
        messages = sum(c.values())
        members = messages if per_shard is None else int(per_shard[shard])
        out.append(
            ShardProgress(
                shard=shard,
                members=members,
                unplanned=max(0, members - messages),
                to_send=sum(c.get(s, 0) for s in TO_SEND),
                sending=c.get(MessageStatus.sending, 0),
                sent=c.get(MessageStatus.sent, 0),
                failed=c.get(MessageStatus.failed, 0),
                skipped=c.get(MessageStatus.skipped, 0),
            )
        )
    return out


def run_progress(
    engine: Engine, *, run_id: int | None = None, limit: int = 20
) -> list[RunProgress]:
    """The progress of run `run_id`, or of the newest `limit` runs."""
    if run_id is None:
        rows = recent_runs(engine, limit=limit)
    else:
        found = run_row(engine, run_id=run_id)
        rows = [] if found is None else [found]
    return [
        RunProgress(r.id, r.campaign, r.scheduled_for, r.status, _shards(engine, r.id))
        for r in rows
    ]
