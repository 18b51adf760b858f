"""Run the `newsletter` command, but stand still at one stage so a test can SIGKILL it there.

    python tests/pipeline/crash_at.py STAGE run weekly --transport smtp://127.0.0.1:2525

At STAGE it prints ``HOLD STAGE`` on stdout and sleeps; the test then kills it with SIGKILL,
exactly as an operator's `kill -9` or the OOM killer would. Stages:

- ``run-row``: the run's row exists, nothing else of it is stored yet;
- ``shard``: the first shard of the plan is written, the second is not;
- ``render``: three messages are handed to the transport, the fourth is being rendered;
- ``sent``: the third message's 250 has just been recorded.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def hold(stage: str) -> None:
    print(f"HOLD {stage}", flush=True)
    time.sleep(3600)


def stop_at(module: Any, name: str, *, call: int, before: bool, stage: str) -> None:
    """Wrap module.name: hold at its `call`-th call, before or after the real one runs."""
    original: Callable[..., Any] = getattr(module, name)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if before and calls[0] == call:
            hold(stage)
        result = original(*args, **kwargs)
        if not before and calls[0] == call:
            hold(stage)
        return result

    setattr(module, name, wrapper)


def main() -> None:
    from newsletter.cli import app
    from newsletter.render import stored
    from newsletter.store import delivery, planning

    stage, args = sys.argv[1], sys.argv[2:]
    if stage == "run-row":
        stop_at(planning, "ensure_run", call=1, before=False, stage=stage)
    elif stage == "shard":
        stop_at(planning, "write_shard", call=2, before=True, stage=stage)
    elif stage == "render":
        stop_at(stored, "render_message", call=4, before=True, stage=stage)
    elif stage == "sent":
        stop_at(delivery, "record_sent", call=3, before=False, stage=stage)
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    app(args)


if __name__ == "__main__":
    main()
