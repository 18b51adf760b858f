"""Segments: YAML errors name file and line, rules compile to the same ids on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from newsletter.db import session_scope, shipped_path
from newsletter.models import Event, Interaction, Item, ItemTopic, Subscriber
from newsletter.plan.segments import (
    SegmentError,
    load_segment_file,
    parse_segment,
    segment_files,
    validate_select,
)
from newsletter.store.segments import segment_ids

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def seed(engine: Engine) -> None:
    """Five subscribers with known answers for every rule kind."""

    def sub(i: int, **kw: object) -> Subscriber:
        base: dict[str, object] = {"id": i, "email": f"s{i}@x.org", "updated_at": NOW}
        base["created_at"] = NOW - timedelta(days=100)
        base.update(kw)
        return Subscriber(**base)  # type: ignore[arg-type]

    with session_scope(engine) as s:
        s.add_all(
            [
                sub(
                    1,
                    locale="en-GB",
                    timezone="Europe/Berlin",
                    attributes={"plan": "pro", "age": 41},
                ),
                sub(2, locale="en", attributes={"plan": "free", "vip": True}),
                sub(3, status="unsubscribed", locale="de-DE", created_at=NOW - timedelta(days=3)),
                sub(4, timezone="America/New_York", created_at=NOW - timedelta(days=10)),
                sub(5, attributes={"age": 19}),
            ]
        )
        s.add(Item(id=1, external_key="a", title="A", url="u", topics=["ai"], updated_at=NOW))
        s.add(Item(id=2, external_key="b", title="B", url="u", topics=["food"], updated_at=NOW))
        s.flush()
        s.add_all([ItemTopic(item_id=1, topic="ai"), ItemTopic(item_id=2, topic="food")])
        for k, (who, item, kind, days) in enumerate(
            [
                (1, 1, "read", 1),
                (1, 1, "read", 2),
                (1, 2, "read", 3),
                (2, 2, "read", 1),
                (4, 1, "click", 40),
            ]
        ):
            s.add(
                Interaction(
                    subscriber_id=who,
                    item_id=item,
                    kind=kind,
                    occurred_at=NOW - timedelta(days=days, seconds=k),
                )
            )
        s.add(Event(subscriber_id=1, kind="open", occurred_at=NOW - timedelta(days=5)))
        s.add(
            Event(
                subscriber_id=2, kind="open", occurred_at=NOW - timedelta(days=2), is_machine=True
            )
        )
        s.add(Event(subscriber_id=4, kind="click", occurred_at=NOW - timedelta(days=60)))


CASES = [
    ("status: active", [1, 2, 4, 5]),
    ("not: {status: active}", [3]),
    ("locale: en", [1, 2]),
    ("timezone: [America/]", [4]),
    ("attribute: {key: plan, equals: pro}", [1]),
    ("attribute: {key: plan, in: [pro, free]}", [1, 2]),
    ("attribute: {key: vip, equals: true}", [2]),
    ("attribute: {key: age, gte: 21}", [1]),
    ("attribute: {key: plan, exists: false}", [3, 4, 5]),
    ("signup: {within_days: 14}", [3, 4]),
    ("signup: {older_than_days: 14}", [1, 2, 5]),
    ("interactions: {kind: read, at_least: 2, within_days: 7}", [1]),
    ("interactions: {topic: food}", [1, 2]),
    ("interactions: {kind: read, at_most: 0}", [3, 4, 5]),
    ("engaged: {within_days: 30}", [1]),
    ("all: [{engaged: {within_days: 90}}, {not: {engaged: {within_days: 30}}}]", [4]),
    ("any: [{locale: de}, {attribute: {key: age, lte: 20}}]", [3, 5]),
    ("sql: \"SELECT id FROM subscriber WHERE email LIKE 's1@%' OR id = 5\"", [1, 5]),
]


@pytest.mark.parametrize(("rule", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_rules_select_the_known_subscribers(engine: Engine, rule: str, expected: list[int]) -> None:
    seed(engine)
    definition = parse_segment(f"rule:\n  {rule}\n", source="t.yaml")
    assert segment_ids(engine, definition=definition, now=NOW) == expected


def test_shipped_defaults_parse_and_run(engine: Engine) -> None:
    seed(engine)
    files = segment_files(shipped_path("segments"))
    assert {"everyone", "active-readers", "new-subscribers", "lapsing-readers"} <= set(files)
    found = {
        n: segment_ids(engine, definition=load_segment_file(p), now=NOW) for n, p in files.items()
    }
    assert found["everyone"] == [1, 2, 4, 5]
    assert found["active-readers"] == [1]
    assert found["new-subscribers"] == [4]
    assert found["lapsing-readers"] == [4]


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("description: x\nrule:\n  all:\n    - status: active\n    - statsu: active\n")
    with pytest.raises(SegmentError) as err:
        load_segment_file(path)
    message = str(err.value)
    assert f"{path}:5:" in message and "'statsu'" in message and "did you mean 'status'" in message
    assert "valid keys:" in message


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("description: x\nrule:\n  city: Z\xfcrich\n".encode("latin-1"))
    with pytest.raises(SegmentError, match=r"latin\.yaml:3: not UTF-8 text \(byte 0xfc\)"):
        load_segment_file(path)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("rule:\n  engaged: {days: 30}\n", 2, "unknown key 'days'"),
        ("rule:\n  interactions: {at_least: many}\n", 2, "at_least must be a whole number"),
        ("rule: [\n", 2, "not valid YAML"),
        ("descripton: x\nrule: {status: active}\n", 1, "did you mean 'description'"),
        ("description: x\n", 1, "no 'rule'"),
    ],
)
def test_malformed_files_give_clear_errors(text: str, line: int, needle: str) -> None:
    with pytest.raises(SegmentError) as err:
        parse_segment(text, source="segments/x.yaml")
    assert str(err.value).startswith(f"segments/x.yaml:{line}:")
    assert needle in str(err.value)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE subscriber SET status = 'x'",
        "DROP TABLE subscriber",
        "SELECT id FROM subscriber; DELETE FROM subscriber",
        "SELECT id FROM subscriber; SELECT 1",
        "WITH x AS (DELETE FROM subscriber RETURNING id) SELECT id FROM x",
        "SELECT id INTO copy FROM subscriber",
    ],
)
def test_raw_sql_that_writes_is_refused(sql: str) -> None:
    with pytest.raises(SegmentError, match="sql rule"):
        validate_select(sql)
    with pytest.raises(SegmentError, match=r"x.yaml:1"):
        parse_segment(f'rule: {{sql: "{sql}"}}\n', source="x.yaml")


def test_raw_sql_keywords_inside_strings_are_fine() -> None:
    sql = "SELECT id FROM subscriber WHERE name = 'Drop; Update'"
    assert validate_select(sql + ";") == sql


def test_raw_sql_must_return_one_column(engine: Engine) -> None:
    seed(engine)
    definition = parse_segment('rule: {sql: "SELECT id, email FROM subscriber"}\n', source="y.yaml")
    with pytest.raises(SegmentError, match="one column"):
        segment_ids(engine, definition=definition, now=NOW)


def test_segment_queries_run_in_a_read_only_transaction(engine: Engine) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from newsletter.store.segments import read_only

    seed(engine)
    with pytest.raises(DBAPIError), read_only(engine) as connection:
        connection.execute(text("DELETE FROM subscriber"))
    with engine.connect() as connection:  # the guard does not leak into pooled connections
        assert connection.execute(text("SELECT count(*) FROM subscriber")).scalar() == 5
    with engine.begin() as connection:
        connection.execute(text("UPDATE subscriber SET name = 'x' WHERE id = 1"))
