"""Message-level machine rules: known answers, and properties over generated click streams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.track.bursts import Hit, bursts, machine_hits

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return SENT + timedelta(seconds=seconds)


def test_bursts_split_on_gaps_of_ten_seconds() -> None:
    hits = [
        Hit(1, "click", at(100), "a"),
        Hit(2, "click", at(109), "b"),
        Hit(3, "click", at(119.5), "c"),
    ]
    assert [[h.id for h in b] for b in bursts(hits)] == [[1, 2], [3]]


def test_the_honeypot_marks_its_burst_and_the_image_fetch_before_it() -> None:
    hits = [
        Hit(1, "open", at(3600), None),
        Hit(2, "click", at(3601), "a"),
        Hit(3, "honeypot", at(3602), None, True),
        Hit(4, "click", at(3603), "a"),
        Hit(5, "click", at(9000), "b"),  # the reader, later
    ]
    assert machine_hits(hits, sent_at=SENT) == {2: "honeypot", 4: "honeypot", 1: "honeypot"}


def test_three_distinct_links_in_five_seconds_but_not_a_double_click() -> None:
    burst = [Hit(n, "click", at(5000 + n), f"l{n}") for n in range(3)]
    assert set(machine_hits(burst, sent_at=SENT)) == {0, 1, 2}
    double = [
        Hit(0, "click", at(5000), "a"),
        Hit(1, "click", at(5000.4), "a"),
        Hit(2, "click", at(5003), "b"),
    ]
    assert machine_hits(double, sent_at=SENT) == {}
    slow = [Hit(n, "click", at(5000 + 3 * n), f"l{n}") for n in range(3)]  # 6 s for three
    assert machine_hits(slow, sent_at=SENT) == {}


def test_an_early_click_needs_no_human_open_to_be_weakly_machine() -> None:
    early = [Hit(1, "click", at(60), "a")]
    assert machine_hits(early, sent_at=SENT) == {1: "early-unopened"}
    read_first = [Hit(0, "open", at(30), None), Hit(1, "click", at(60), "a")]
    assert machine_hits(read_first, sent_at=SENT) == {}
    scanner_open = [Hit(0, "open", at(57), None), Hit(1, "click", at(60), "a")]  # 3 s before
    assert machine_hits(scanner_open, sent_at=SENT) == {1: "early-unopened", 0: "early-unopened"}
    machine_open = [Hit(0, "open", at(30), None, True), Hit(1, "click", at(60), "a")]  # MPP
    assert machine_hits(machine_open, sent_at=SENT) == {1: "early-unopened"}
    assert machine_hits([Hit(1, "click", at(200), "a")], sent_at=SENT) == {}
    assert machine_hits(early, sent_at=None) == {}


events = st.lists(
    st.tuples(
        st.sampled_from(["click", "click", "click", "open", "honeypot"]),
        st.floats(min_value=0, max_value=400, allow_nan=False),
        st.sampled_from(["a", "b", "c", "d"]),
    ),
    max_size=25,
)


def _hits(raw: list[tuple[str, float, str]]) -> list[Hit]:
    ordered = sorted(raw, key=lambda r: r[1])
    return [
        Hit(n, kind, at(t), link if kind == "click" else None, kind == "honeypot")
        for n, (kind, t, link) in enumerate(ordered)
    ]


@settings(max_examples=300, deadline=None)
@given(events)
def test_flags_only_grow_as_events_arrive_in_time_order(raw: list) -> None:
    hits = _hits(raw)
    final = machine_hits(hits, sent_at=SENT)
    for cut in range(len(hits) + 1):
        assert set(machine_hits(hits[:cut], sent_at=SENT)) <= set(final)


@settings(max_examples=300, deadline=None)
@given(events, st.randoms(use_true_random=False))
def test_the_order_events_are_given_in_does_not_matter(raw: list, rng) -> None:
    hits = _hits(raw)
    shuffled = list(hits)
    rng.shuffle(shuffled)
    assert set(machine_hits(shuffled, sent_at=SENT)) == set(machine_hits(hits, sent_at=SENT))


def _reference_marks(hits: list[Hit]) -> dict[int, str]:
    """The rules written the obvious, quadratic way (the definition in the module docstring)."""
    from newsletter.track.bursts import burst_rules

    opens = [h for h in hits if h.kind == "open"]
    marked: dict[int, str] = {}
    for burst in bursts(hits):
        clicks = [h for h in burst if h.kind == "click"]
        many = any(
            len({h.link for h in clicks[i:] if (h.at - c.at).total_seconds() <= 5.0}) >= 3
            for i, c in enumerate(clicks)
        )
        held = [r for r in burst_rules(burst, opens, SENT) if r != "link-burst"]
        if many:
            held.insert(1 if "honeypot" in held else 0, "link-burst")
        if not held:
            continue
        for h in clicks:
            marked.setdefault(h.id, held[0])
        for o in opens:
            if burst[0].at - timedelta(seconds=10) <= o.at <= burst[-1].at:
                marked.setdefault(o.id, held[0])
    return marked


@settings(max_examples=300, deadline=None)
@given(events)
def test_the_linear_rules_agree_with_the_quadratic_definition(raw: list) -> None:
    hits = _hits(raw)
    assert machine_hits(hits, sent_at=SENT) == _reference_marks(hits)


def test_a_message_with_a_thousand_clicks_on_one_link_is_one_burst_and_not_a_link_burst() -> None:
    hammered = [Hit(n, "click", at(3600 + n * 0.5), "a") for n in range(1000)]
    assert len(bursts(hammered)) == 1
    assert machine_hits(hammered, sent_at=SENT) == {}
    three = [
        *hammered,
        Hit(1000, "click", at(3600 + 400.1), "b"),
        Hit(1001, "click", at(3600 + 401), "c"),
    ]
    assert set(machine_hits(three, sent_at=SENT)) == {h.id for h in three}
