"""Progress reporting: the callbacks long stages accept, so a shell can draw bars.

Stages never print. A stage that works through many rows (import, sync, planning) takes
``progress: Tick = silent`` and calls it as it goes::

    progress("importing interactions", done, total)   # total None while it is unknown

with the same ``stage`` text for one piece of work and a growing ``done``. Delivery reports to
a :class:`ProgressSink` instead: told how many messages are to be delivered, then every
outcome as it happens (a sink that also has ``advance(n)`` is moved on per finished shard when
shards are delivered in other processes). The command line turns both into Rich progress bars
on stderr (``newsletter/cli/progress.py``); everything else passes nothing and pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

Tick = Callable[[str, int, int | None], None]


def silent(stage: str, done: int, total: int | None) -> None:
    """The default: report nothing."""
    return None


class ProgressSink(Protocol):
    """Told how many messages are to be delivered, then every outcome as it happens
    (a ``newsletter.deliver.dispatch.Outcome``)."""

    def start(self, total: int) -> None: ...

    def __call__(self, outcome: Any) -> None: ...


@dataclass
class StartedProgress:
    """A progress sink whose total was already set (retry-failed counts before requeueing)."""

    inner: ProgressSink

    def start(self, total: int) -> None:
        return None

    def __call__(self, outcome: Any) -> None:
        self.inner(outcome)

    def advance(self, count: int) -> None:
        """Pass a per-shard count on when the inner sink can take one."""
        advance = getattr(self.inner, "advance", None)
        if advance is not None:
            advance(count)
