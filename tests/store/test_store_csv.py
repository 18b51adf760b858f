"""CSV import: bad rows are reported with file, line and reason; good rows load."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from newsletter.models import Interaction, Item, ItemTopic, Subscriber
from newsletter.store.csv_import import import_csv
from newsletter.store.queries import count_rows
from newsletter.store.records import RowError

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    subscribers = write(
        tmp_path / "subscribers.csv",
        """
subscriber_key,email,timezone,topics,plan
s1,ann@example.com,Europe/Berlin,science|film,gold
s2,not-an-email,UTC,,
s3,bob@example.com,Mars/Olympus,,
,carl@example.com,UTC,,
s5,dora@example.com,,film,silver
""",
    )
    items = write(
        tmp_path / "items.csv",
        """
item_key,title,url,topics,published_at,in_stock
i1,Stars,https://example.com/1,science,2026-02-01T10:00:00Z,true
i2,Films,https://example.com/2,film|culture,2026-02-02,false
i3,Broken,ftp://example.com/3,film,2026-02-02,true
""",
    )
    interactions = write(
        tmp_path / "interactions.csv",
        """
subscriber_key,item_key,kind,occurred_at,value
s1,i1,read,2026-02-03T08:00:00+01:00,
s1,i2,click,2026-02-04 09:30:00,
s1,i2,click,yesterday,
s5,i1,teleport,2026-02-04,
,i1,view,2026-02-04,
s5,i9,view,2026-02-04,
s9,i1,view,2026-02-04,
s5,i2,purchase,1770000000,19.99
s5,i2,purchase,1770000000,19.99
""",
    )
    return {"subscribers": subscribers, "items": items, "interactions": interactions}


def test_broken_rows_are_reported_by_line_and_the_rest_loads(
    engine: Engine, files: dict[str, Path]
) -> None:
    report = import_csv(engine, now=NOW, **files)
    rejected = {(Path(r.source).name, r.line): r.reason for r in report.rejected}
    assert rejected == {
        ("subscribers.csv", 3): "bad email 'not-an-email'",
        ("subscribers.csv", 4): "unknown timezone 'Mars/Olympus' (use an IANA name)",
        ("subscribers.csv", 5): "missing subscriber_key",
        ("items.csv", 4): "bad url 'ftp://example.com/3': expected http(s)://...",
        ("interactions.csv", 4): "bad occurred_at 'yesterday': expected ISO 8601 or Unix seconds",
        ("interactions.csv", 5): (
            "unknown kind 'teleport': expected one of "
            "view, read, click, like, cart, purchase, rating"
        ),
        ("interactions.csv", 6): "missing subscriber_key",
        ("interactions.csv", 7): "unknown item_key 'i9'",
        ("interactions.csv", 8): "unknown subscriber_key 's9'",
    }
    # the duplicate purchase (line 10) is the same event: stored once
    assert count_rows(engine) == {"subscribers": 2, "items": 2, "interactions": 3}
    with Session(engine) as session:
        ann = session.exec(select(Subscriber).where(Subscriber.external_key == "s1")).scalar_one()
        assert ann.timezone == "Europe/Berlin" and ann.topics == ["science", "film"]
        assert ann.attributes == {"plan": "gold"}
        dora = session.exec(select(Subscriber).where(Subscriber.external_key == "s5")).scalar_one()
        assert dora.timezone == "UTC"  # the default
        films = session.exec(select(Item).where(Item.external_key == "i2")).scalar_one()
        assert films.attributes == {"in_stock": "false"}
        topics = session.exec(select(ItemTopic.topic).where(ItemTopic.item_id == films.id)).all()
        assert sorted(t[0] for t in topics) == ["culture", "film"]
        read = session.exec(select(Interaction).where(Interaction.kind == "read")).scalar_one()
        assert read.occurred_at == datetime(2026, 2, 3, 7, 0, tzinfo=UTC)


def test_reimport_updates_instead_of_duplicating(engine: Engine, files: dict[str, Path]) -> None:
    import_csv(engine, now=NOW, **files)
    write(
        files["subscribers"],
        "subscriber_key,email,status\ns1,ann.new@example.com,unsubscribed\n",
    )
    report = import_csv(engine, now=NOW, **files)
    assert report.as_dict()["subscribers"] == {"read": 1, "loaded": 1, "new": 0, "rejected": 0}
    assert report.as_dict()["interactions"]["new"] == 0  # all 3 were already stored
    assert count_rows(engine) == {"subscribers": 2, "items": 2, "interactions": 3}
    with Session(engine) as session:
        ann = session.exec(select(Subscriber).where(Subscriber.external_key == "s1")).scalar_one()
        assert (ann.email, ann.status) == ("ann.new@example.com", "unsubscribed")


def test_email_owned_by_another_subscriber_is_rejected(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "s.csv",
        "subscriber_key,email\na,same@example.com\nb,same@example.com\nc,C@Example.com\n",
    )
    report = import_csv(sqlite_engine, subscribers=path, now=NOW)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "email 'same@example.com' already used")
    ]
    assert count_rows(sqlite_engine)["subscribers"] == 2


def test_missing_required_column_names_the_file_and_columns(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path / "items.csv", "item_key,title\ni1,No url\n")
    with pytest.raises(RowError, match=r"items\.csv:1: missing column\(s\) url"):
        import_csv(sqlite_engine, items=path, now=NOW)
    assert count_rows(sqlite_engine)["items"] == 0
