"""Rich progress bars on stderr for the command line: one bar per stage, with counts and rate.

    with ProgressBars(err_console) as bars:
        import_csv(..., progress=bars)               # a Tick: bars(stage, done, total)
        run_campaign(..., progress=bars.delivery())  # a delivery ProgressSink

Bars are drawn only when stderr is a terminal, so piped and ``--json`` output stays clean.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressBars:
    """A Tick for stages (see ``newsletter.progress``) drawn as Rich bars."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not (enabled and console.is_terminal),
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        task = self.tasks.get(stage)
        if task is None:
            task = self.tasks[stage] = self.bar.add_task(stage, total=total, rate="")
        speed = self.bar.tasks[task].speed if self.bar.tasks else None
        rate = f"{speed:,.0f}/s" if speed else ""
        self.bar.update(task, completed=done, total=total, rate=rate)

    def delivery(self, stage: str = "rendering and delivering") -> DeliveryBar:
        """A delivery ProgressSink on this display (told the total, then every outcome)."""
        return DeliveryBar(self, stage)

    def __enter__(self) -> ProgressBars:
        self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.stop()


class DeliveryBar:
    """Counts delivery outcomes (a retry is not progress) on one bar of a ProgressBars."""

    def __init__(self, bars: ProgressBars, stage: str) -> None:
        self.bars, self.stage = bars, stage
        self.total: int | None = None
        self.done = 0

    def start(self, total: int) -> None:
        self.total = total
        self.bars(self.stage, self.done, total)

    def __call__(self, outcome: Any) -> None:
        if outcome.status == "retry":
            return
        self.advance(1)

    def advance(self, count: int) -> None:
        """Move the bar on by `count` finished messages (a process pool reports per shard)."""
        self.done += count
        self.bars(self.stage, self.done, self.total)
