"""A terminal progress bar for delivery passes (a ProgressSink for the shells)."""

from __future__ import annotations

from typing import Any

from newsletter.deliver.dispatch import Outcome


class RichProgress:
    """A rich progress bar (done/total, messages per second, ETA) on a console.

    Disabled when the console is not a terminal; use as a context manager around a call.
    In-process deliveries report every outcome; a process pool reports each finished shard
    through :meth:`advance`.
    """

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.task = self.bar.add_task("preparing", total=None, rate="")
        self.tally: dict[str, int] = {}

    def start(self, total: int) -> None:
        self.bar.update(self.task, total=total, description="delivering")

    def __call__(self, outcome: Outcome) -> None:
        self.tally[outcome.status] = self.tally.get(outcome.status, 0) + 1
        if outcome.status == "retry":
            return
        self.advance(1)

    def advance(self, count: int) -> None:
        """Move the bar on by `count` finished messages."""
        speed = self.bar.tasks[0].speed
        self.bar.update(self.task, advance=count, rate=f"{speed:,.0f} msg/s" if speed else "")

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.stop()
