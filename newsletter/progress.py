"""Progress reporting: the callback long stages accept, so a shell can draw bars.

Stages never print. A stage that works through many rows (import, sync, planning, delivery)
takes ``progress: Tick = silent`` and calls it as it goes::

    progress("importing interactions", done, total)   # total None while it is unknown

with the same ``stage`` text for one piece of work and a growing ``done``. The command line
turns the calls into Rich progress bars on stderr (``newsletter/cli_progress.py``); everything
else passes nothing and pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable

Tick = Callable[[str, int, int | None], None]


def silent(stage: str, done: int, total: int | None) -> None:
    """The default: report nothing."""
    return None
