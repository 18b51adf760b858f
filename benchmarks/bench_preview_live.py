"""Web UI live preview latency (issue 17): 30 typical edits of the digest for one real subscriber.

    newsletter demo --dir /tmp/demo && python benchmarks/bench_preview_live.py /tmp/demo

Each edit changes the MJML body and the subject; the preview lints, compiles and renders the
draft strictly for the subscriber's newest message (their real picks and reasons), as
``POST /admin/templates/NAME/preview`` does (minus HTTP). Target: under 300 ms.
"""

from __future__ import annotations

import statistics
import sys
import time

from sqlalchemy import text

from newsletter.admin.editor import Draft
from newsletter.admin.preview import PreviewInputs, live_preview
from newsletter.config import Settings
from newsletter.db import make_engine, now_utc
from newsletter.render.compile import TEMPLATES_DIR

FILES = ("template.mjml", "subject.txt", "preheader.txt", "text.txt")


def main(folder: str) -> None:
    engine = make_engine(f"sqlite:///{folder}/newsletter.db")
    with engine.connect() as c:
        query = text("select subscriber_id from message where status = 'sent' limit 1")
        subscriber = c.execute(query).scalar()
    base = Draft(*((TEMPLATES_DIR / "digest" / f).read_text(encoding="utf-8") for f in FILES))
    settings, inputs, now = Settings(secret_key="x" * 32), PreviewInputs(), now_utc()
    times = []
    for i in range(31):
        mjml = base.mjml.replace("here are this", f"here are {i} of this")
        draft = Draft(mjml, f"{base.subject} {i}", base.preheader, base.text)
        started = time.perf_counter()
        result = live_preview(
            engine,
            settings=settings,
            name="digest",
            kind="digest",
            draft=draft,
            subscriber=subscriber,
            now=now,
            inputs=inputs,
        )
        times.append(1000 * (time.perf_counter() - started))
        assert result.html and not result.issues, result.issues
    rest = times[1:]
    print(
        f"first (cold) {times[0]:.1f} ms; next {len(rest)} edits: median "
        f"{statistics.median(rest):.1f} ms, max {max(rest):.1f} ms; data: {result.data_label}"
    )


if __name__ == "__main__":
    main(sys.argv[1])
