"""Guardrails on hand-built frames with known answers."""

from __future__ import annotations

import pandas as pd

from newsletter.report.guardrails import guardrails

WHEN = pd.Timestamp("2026-03-09 07:00", tz="UTC")


def _frames() -> tuple[pd.DataFrame, ...]:
    runs = pd.DataFrame({"run_id": [1], "campaign": ["c"], "scheduled_for": [WHEN]})
    messages = pd.DataFrame(
        {
            "message_id": [1, 2, 3, 4],
            "run_id": 1,
            "subscriber_id": [1, 2, 3, 4],
            "arm": ["personalized", "personalized", "popular", "popular"],
            "status": "sent",
            "reason": None,
            "unsubscribe": [1, 0, 0, 0],
        }
    )
    # personalized shows items 10, 11 (new), 12, 13; popular shows 10 twice and 12 twice
    slots = pd.DataFrame(
        {
            "message_id": [1, 1, 2, 2, 3, 3, 4, 4],
            "run_id": 1,
            "subscriber_id": [1, 1, 2, 2, 3, 3, 4, 4],
            "arm": ["personalized"] * 4 + ["popular"] * 4,
            "position": [0, 1, 0, 1, 0, 1, 0, 1],
            "item_id": [10, 11, 12, 13, 10, 12, 10, 12],
            "source": [
                "model",
                "explore",
                "model",
                "explore",
                "popularity",
                "popularity",
                "popularity",
                "popularity",
            ],
            "propensity": [1, 0.5, 1, 0.2, 1, 1, 1, 1],
            "score": 0.0,
            "clicked": [1, 1, 0, 0, 1, 0, 0, 0],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": [10, 11, 12, 13, 14],
            "published_at": [WHEN - pd.Timedelta(days=d) for d in (20, 2, 20, 40, 3)],
            "topics": [["a"], ["b"], ["a"], ["c"], ["d"]],
            "active": True,
        }
    )
    return runs, messages, slots, items


def test_known_coverage_discovery_breadth_and_slot_ctrs() -> None:
    runs, messages, slots, items = _frames()
    g = guardrails(runs=runs, messages=messages, slots=slots, items=items, engaged={1: set()})
    # in play: published within 28 days (10, 11, 12, 14) plus sent (13) = 5 items
    assert g.coverage == {"personalized": 4 / 5, "popular": 2 / 5}
    # new (last 7 days): 11 and 14; personalized got a click on 11
    assert g.discovery == {"personalized": 0.5, "popular": 0.0}
    assert g.breadth == {"personalized": 2.0, "popular": 1.0}  # subscriber 1 clicked a and b
    assert g.explore_ctr == 0.5 and g.exploit_ctr == 0.5 and g.explore_slots == 2
    assert g.unsubscribe_rate == {"personalized": 0.5, "popular": 0.0}
    assert len(g.warnings) == 1 and "unsubscribe more than the holdout" in g.warnings[0]
