"""What the subscriber said stands: a sync or an import that omits a field never resets it.

The readers act through the real tracking routes (unsubscribe, preference centre), then the
customer's database changes their profiles (so a sync returns them again), a CSV import
follows, and the next plan must still skip or honour what they chose.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlmodel import Session

from newsletter import tokens
from newsletter.api.app import create_app
from newsletter.config import Settings, SourceQueries
from newsletter.db import make_engine, session_scope
from newsletter.models import Item, Message, Segment, Slot, Subscriber, Suppression
from newsletter.pipeline import run_campaign
from newsletter.plan.planner import plan_run
from newsletter.store.apikeys import create_key
from newsletter.store.campaigns import upsert_campaign
from newsletter.store.csv_import import import_csv
from newsletter.store.sync import sync_source
from testsupport import with_csrf

SECRET = "ownership-test-secret-0123456789"
SETTINGS = Settings(secret_key=SECRET, base_url="https://news.example.com")
T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)  # a Monday
FORM = {"content-type": "application/x-www-form-urlencoded"}
PUBLISHER_SCHEMA = [
    "CREATE TABLE readers (rid INTEGER PRIMARY KEY, mail VARCHAR(200), full_name VARCHAR(200),"
    " tz VARCHAR(50), changed TIMESTAMP)",
    "CREATE TABLE stories (slug VARCHAR(20) PRIMARY KEY, headline VARCHAR(200),"
    " link VARCHAR(200), section VARCHAR(50), published TIMESTAMP, modified TIMESTAMP)",
    "CREATE TABLE reads (id INTEGER PRIMARY KEY, rid INTEGER, slug VARCHAR(20), ts TIMESTAMP)",
]
# No status, frequency or topics column: the publisher does not know them.
PUBLISHER_QUERIES = {
    "subscribers": "SELECT 'r' || CAST(rid AS VARCHAR(20)) AS subscriber_key, mail AS email,"
    " full_name AS name, tz AS timezone, changed AS updated_at FROM readers",
    "items": "SELECT slug AS item_key, headline AS title, link AS url, section AS topics,"
    " published AS published_at, modified AS updated_at FROM stories",
    "interactions": "SELECT 'r' || CAST(rid AS VARCHAR(20)) AS subscriber_key, slug AS item_key,"
    " 'read' AS kind, ts AS occurred_at FROM reads",
}
READERS = ["ann", "bob", "cat", "dan", "eve"]
SECTIONS = ("garden", "kitchen", "travel")
CAMPAIGN = {
    "ranker": "popularity",
    "arms": {"popular": 0.0},
    "exploration_share": 0.0,
    "n_items": 4,
    "sections": [
        {"title": "New for you", "kind": "new_in_topics", "count": 3},
        {"title": "Top picks", "kind": "top_picks", "count": 1},
    ],
}


def _seed_publisher(url: str) -> Engine:
    source = make_engine(url)
    with source.begin() as c:
        for statement in PUBLISHER_SCHEMA:
            c.execute(text(statement))
        for rid, name in enumerate(READERS, start=1):
            c.execute(
                text("INSERT INTO readers VALUES (:r, :m, :n, 'Europe/Paris', '2026-05-01')"),
                {"r": rid, "m": f"{name}@example.com", "n": name.title()},
            )
        for n in range(12):
            c.execute(
                text("INSERT INTO stories VALUES (:s, :h, :l, :t, :p, '2026-05-01')"),
                {
                    "s": f"s{n}",
                    "h": f"Story {n}",
                    "l": f"https://paper.example/{n}",
                    "t": SECTIONS[n % 3],
                    "p": (T0 - timedelta(days=1 + n % 4)).replace(tzinfo=None),
                },
            )
        for k in range(40):
            c.execute(
                text("INSERT INTO reads VALUES (:i, :r, :s, :t)"),
                {
                    "i": k,
                    "r": 1 + k % 5,
                    "s": f"s{(k * 7) % 12}",
                    "t": (T0 - timedelta(hours=k + 1)).replace(tzinfo=None),
                },
            )
    return source


def _state(engine: Engine) -> dict[str, tuple[str, str, list[str], str | None]]:
    """Per reader key: (status, frequency, topics, name)."""
    with Session(engine) as s:
        rows = s.execute(select(Subscriber)).scalars().all()
        return {r.external_key: (r.status, r.frequency, sorted(r.topics), r.name) for r in rows}  # type: ignore[misc]


def _message_ids(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        rows = s.execute(
            select(Subscriber.external_key, Message.id).join(
                Subscriber,
                Subscriber.id == Message.subscriber_id,  # type: ignore[arg-type]
            )
        ).all()
    return {str(k): int(m) for k, m in rows}


@pytest.fixture
def publisher(tmp_path: Path) -> Iterator[tuple[Engine, SourceQueries]]:
    url = f"sqlite:///{tmp_path / 'publisher.db'}"
    source = _seed_publisher(url)
    yield source, SourceQueries(url=url, **PUBLISHER_QUERIES)
    source.dispose()


def _first_digest(engine: Engine, queries: SourceQueries) -> dict[str, int]:
    """Sync the publisher, create the weekly digest and send it; message id per reader."""
    sync_source(engine, name="paper", source=queries, now=T0)
    with session_scope(engine) as s:
        s.add(
            Segment(name="all-known", definition="rule: {not: {status: nobody}}\n", updated_at=T0)
        )
    upsert_campaign(
        engine,
        name="weekly",
        template_name="digest",
        segment_name="all-known",
        config=CAMPAIGN,
        now=T0,
    )
    summary = run_campaign(
        engine, campaign="weekly", now=T0, settings=SETTINGS, transport_url="memory:"
    )
    assert summary.counts.by_status == {"sent": 5}
    return _message_ids(engine)


def _readers_act(engine: Engine, messages: dict[str, int]) -> None:
    """Through the tracking service: ann unsubscribes, bob pauses, cat goes monthly on
    garden, dan keeps weekly on travel; eve does nothing."""
    app = create_app(settings=SETTINGS, engine=engine, clock=lambda: T0 + timedelta(hours=3))
    with TestClient(app) as client:

        def post(kind: str, reader: str, body: str) -> None:
            sign = tokens.sign_unsubscribe if kind == "u" else tokens.sign_preferences
            token = sign(secret_key=SECRET, message_id=messages[reader])
            path = f"/{kind}/{token}"
            if kind == "p":
                body = with_csrf(client, path, body)
            response = client.post(path, headers=FORM, content=body)
            assert response.status_code == 200, response.text

        post("u", "r1", "List-Unsubscribe=One-Click")
        post("p", "r2", "frequency=paused")
        post("p", "r3", "frequency=monthly&topics=garden")
        post("p", "r4", "frequency=weekly&topics=travel")


CHOSEN = {
    "r1": ("unsubscribed", "weekly", []),
    "r2": ("active", "paused", []),
    "r3": ("active", "monthly", ["garden"]),
    "r4": ("active", "weekly", ["travel"]),
    "r5": ("active", "weekly", []),
}


def _without_name(state: dict[str, tuple[str, str, list[str], str | None]]) -> dict[str, tuple]:
    return {k: v[:3] for k, v in state.items()}


def test_sync_and_import_that_omit_the_fields_never_undo_what_readers_chose(
    engine: Engine, publisher: tuple[Engine, SourceQueries], tmp_path: Path
) -> None:
    source, queries = publisher
    _readers_act(engine, _first_digest(engine, queries))
    assert _without_name(_state(engine)) == CHOSEN

    # The publisher edits every profile: the next sync returns all five rows again.
    with source.begin() as c:
        c.execute(text("UPDATE readers SET full_name = full_name || ' E.', changed = '2026-06-03'"))
    report = sync_source(engine, name="paper", source=queries, now=T0 + timedelta(days=2))
    assert (report[0].fetched, report[0].loaded) == (5, 5)
    after_sync = _state(engine)
    assert _without_name(after_sync) == CHOSEN
    assert after_sync["r1"][3] == "Ann E."  # what the source owns still updates

    # A CSV export of the same readers, again without those columns.
    csv = tmp_path / "readers.csv"
    lines = ["subscriber_key,email,name,timezone"]
    lines += [f"r{i},{n}@example.com,{n.upper()},Europe/Paris" for i, n in enumerate(READERS, 1)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    imported = import_csv(engine, subscribers=csv, now=T0 + timedelta(days=3))
    assert imported.as_dict()["subscribers"] == {"read": 5, "loaded": 5, "new": 0, "rejected": 0}
    assert _without_name(_state(engine)) == CHOSEN
    with Session(engine) as s:
        [suppressed] = s.execute(select(Suppression.email)).all()
    assert suppressed[0] == "ann@example.com"

    # The publisher's web app sends the same profiles through the upsert API, again without
    # those fields.
    _api_edits_profiles(engine, T0 + timedelta(days=4))
    assert _without_name(_state(engine)) == CHOSEN

    # The next week's plan skips or honours every choice.
    plan_run(engine, campaign="weekly", now=T0 + timedelta(days=7), settings=SETTINGS)
    outcome = _next_plan(engine)
    assert {k: v[:2] for k, v in outcome.items()} == {
        "r1": ("skipped", "unsubscribed"),
        "r2": ("skipped", "paused"),
        "r3": ("skipped", "frequency_monthly"),
        "r4": ("planned", None),
        "r5": ("planned", None),
    }
    named = {r.removeprefix("New in ") for r in outcome["r4"][2] if r.startswith("New in ")}
    assert named == {"travel"}  # dan's chosen topic, never another one the item carries
    assert not any(r.startswith("New in ") for r in outcome["r5"][2])  # eve follows no topic


def _api_edits_profiles(engine: Engine, when: datetime) -> None:
    """PUT /api/subscribers/{key} with only email and name, as a publisher's app would."""
    key = create_key(engine, name="web", scope="events", rate_limit=None, now=when)[1]
    app = create_app(settings=SETTINGS, engine=engine, clock=lambda: when)
    with TestClient(app) as client:
        for rid, name in enumerate(READERS, start=1):
            response = client.put(
                f"/api/subscribers/r{rid}",
                json={"email": f"{name}@example.com", "name": f"{name.title()} API"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 200, response.text
    assert {k: v[3] for k, v in _state(engine).items()} == {
        f"r{rid}": f"{name.title()} API" for rid, name in enumerate(READERS, start=1)
    }


def _next_plan(engine: Engine) -> dict[str, tuple[str, str | None, list[str]]]:
    """Per reader: status and reason of their message in the newest run, and slot reasons."""
    with Session(engine) as s:
        run_id = s.execute(select(Message.run_id).order_by(Message.run_id.desc())).scalar()  # type: ignore[attr-defined]
        rows = s.execute(
            select(Subscriber.external_key, Message.id, Message.status, Message.reason)
            .join(Subscriber, Subscriber.id == Message.subscriber_id)  # type: ignore[arg-type]
            .where(Message.run_id == run_id)
        ).all()
        out = {}
        for key, message_id, status, reason in rows:
            texts = s.execute(select(Slot.reason_text).where(Slot.message_id == message_id)).all()
            out[str(key)] = (status, reason, [t[0] for t in texts])
    return out


def test_items_keep_what_the_marketer_set_when_a_sync_omits_it(
    engine: Engine, publisher: tuple[Engine, SourceQueries], tmp_path: Path
) -> None:
    _, queries = publisher
    csv = tmp_path / "items.csv"
    csv.write_text(
        "item_key,title,url,active,in_stock\n"
        "s1,Story 1,https://paper.example/1,false,yes\n"
        "s2,Story 2,https://paper.example/2,true,no\n",
        encoding="utf-8",
    )
    import_csv(engine, items=csv, now=T0)  # the marketer retires story 1
    sync_source(engine, name="paper", source=queries, now=T0)
    with Session(engine) as s:
        items = {i.external_key: i for i in s.execute(select(Item)).scalars()}
    assert items["s1"].active is False and items["s2"].active is True
    assert items["s1"].attributes == {"in_stock": "yes"}  # the sync returns no extra column
    assert items["s1"].topics == ["kitchen"] and items["s1"].published_at is not None

    narrow = tmp_path / "titles.csv"
    narrow.write_text("item_key,title,url,in_stock\ns1,Story One,https://paper.example/1,\n")
    import_csv(engine, items=narrow, now=T0)
    with Session(engine) as s:
        story = s.execute(select(Item).where(Item.external_key == "s1")).scalar_one()
    assert (story.title, story.active, story.topics) == ("Story One", False, ["kitchen"])
    assert story.attributes == {}  # a blank extra column removes just that attribute


MEMBERS_SCHEMA = (
    "CREATE TABLE members (mid INTEGER PRIMARY KEY, mail VARCHAR(200), state VARCHAR(20),"
    " freq VARCHAR(20), opted TIMESTAMP, changed TIMESTAMP)"
)
MEMBERS_QUERY = (
    "SELECT 'm' || CAST(mid AS VARCHAR(20)) AS subscriber_key, mail AS email, state AS status,"
    " freq AS frequency, opted AS opted_in_at, changed AS updated_at FROM members"
)


def _members_change(source: Engine, day: int, changes: dict[int, dict[str, object]]) -> None:
    """Edit members in the customer's database (each edit moves `changed` on)."""
    with source.begin() as c:
        for mid, values in changes.items():
            sets = ", ".join(f"{k} = :{k}" for k in values)
            params = {k: _naive(v) for k, v in values.items()}
            c.execute(
                text(f"UPDATE members SET {sets}, changed = :changed WHERE mid = :mid"),
                params | {"mid": mid, "changed": _naive(T0 + timedelta(days=day))},
            )


def _naive(value: object) -> object:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def _one_message_each(engine: Engine) -> dict[str, int]:
    """A sent message per subscriber, so each has signed links to act on."""
    from newsletter.models import Campaign, Run

    with session_scope(engine) as s:
        campaign = Campaign(name="news", template_name="digest", created_at=T0)
        s.add(campaign)
        s.flush()
        run = Run(campaign_id=campaign.id, scheduled_for=T0, created_at=T0)  # type: ignore[arg-type]
        s.add(run)
        s.flush()
        for sub in s.execute(select(Subscriber)).scalars():
            s.add(
                Message(
                    run_id=run.id,  # type: ignore[arg-type]
                    subscriber_id=sub.id,  # type: ignore[arg-type]
                    status="sent",
                    planned_for=T0,
                    sent_at=T0,
                    updated_at=T0,
                )
            )
    return _message_ids(engine)


def test_a_source_that_owns_status_follows_the_documented_precedence(
    engine: Engine, source_urls: tuple[str, str]
) -> None:
    owner_url, source_url = source_urls
    source = make_engine(owner_url)
    with source.begin() as c:
        c.execute(text(MEMBERS_SCHEMA))
        for mid in range(1, 6):
            c.execute(
                text("INSERT INTO members VALUES (:m, :e, 'active', :f, NULL, :t)"),
                {"m": mid, "e": f"m{mid}@example.com", "f": "monthly" if mid == 5 else None}
                | {"t": _naive(T0 - timedelta(days=30))},
            )
    queries = SourceQueries(url=source_url, subscribers=MEMBERS_QUERY)

    def sync(day: int) -> dict[str, tuple[str, str, list[str], str | None]]:
        sync_source(engine, name="crm", source=queries, now=T0 + timedelta(days=day))
        return _state(engine)

    assert {k: v[:2] for k, v in sync(0).items()} == {
        "m1": ("active", "weekly"),
        "m2": ("active", "weekly"),
        "m3": ("active", "weekly"),
        "m4": ("active", "weekly"),
        "m5": ("active", "monthly"),
    }
    messages = _one_message_each(engine)
    app = create_app(settings=SETTINGS, engine=engine, clock=lambda: T0 + timedelta(hours=1))
    with TestClient(app) as client:
        token = tokens.sign_unsubscribe(secret_key=SECRET, message_id=messages["m1"])
        one_click = "List-Unsubscribe=One-Click"
        assert client.post(f"/u/{token}", headers=FORM, content=one_click).status_code == 200
        token = tokens.sign_preferences(secret_key=SECRET, message_id=messages["m2"])
        body = with_csrf(client, f"/p/{token}", "frequency=paused")
        assert client.post(f"/p/{token}", headers=FORM, content=body).is_success
    with engine.begin() as c:  # m3 reported a message as spam (an ESP feedback loop)
        c.execute(
            text(
                "UPDATE subscriber SET status = 'complained', status_changed_at = :t WHERE id = 3"
            ),
            {"t": T0 + timedelta(hours=2)},
        )

    _members_change(
        source,
        2,
        {
            1: {"state": "active"},  # says active, no opt-in: the unsubscribe stands
            2: {"freq": "weekly"},  # m2 chose paused in the preference centre: that stands
            3: {"opted": T0 + timedelta(days=2)},  # nothing re-activates a complaint
            4: {"state": "unsubscribed"},  # a source may unsubscribe
            5: {"freq": "weekly"},  # m5 never chose: the source still sets the frequency
        },
    )
    assert {k: v[:2] for k, v in sync(2).items()} == {
        "m1": ("unsubscribed", "weekly"),
        "m2": ("active", "paused"),
        "m3": ("complained", "weekly"),
        "m4": ("unsubscribed", "weekly"),
        "m5": ("active", "weekly"),
    }
    # An opt-in older than the unsubscribe (an old sign-up date) re-activates nobody.
    _members_change(source, 3, {1: {"opted": T0 + timedelta(minutes=30)}})
    assert sync(3)["m1"][0] == "unsubscribed"
    # A new explicit opt-in does, and lifts the unsubscribe's suppression; a row that still
    # says unsubscribed wins over its own opt-in date until it says active.
    later = T0 + timedelta(days=4)
    _members_change(source, 4, {1: {"opted": later}, 4: {"opted": later}})
    state = sync(4)
    assert (state["m1"][0], state["m3"][0], state["m4"][0]) == (
        "active",
        "complained",
        "unsubscribed",
    )
    _members_change(source, 5, {4: {"state": "active"}})
    assert sync(5)["m4"][0] == "active"
    with Session(engine) as s:
        assert s.execute(select(Suppression.email)).all() == []
    source.dispose()


def test_a_partial_record_as_an_api_would_send_changes_only_its_fields(engine: Engine) -> None:
    """The store-level upsert the events/upsert API is to reuse: one JSON-like body with a
    few fields goes through the same parser and writer as a CSV row."""
    from newsletter.store.ingest import parse_row, write_batch

    def upsert(body: dict[str, object], when: datetime) -> None:
        record = parse_row("subscribers", body, default_timezone="Europe/Paris")
        with engine.begin() as c:
            write_batch(
                c, entity="subscribers", rows=[(1, record)], source="api", now=when, origin="api"
            )

    upsert(
        {"subscriber_key": "a1", "email": "ann@example.com", "frequency": "monthly", "plan": "pro"},
        T0,
    )
    with engine.begin() as c:  # she pauses in the preference centre
        c.execute(
            text("UPDATE subscriber SET frequency = 'paused', preferences_set_at = :t"),
            {"t": T0 + timedelta(hours=1)},
        )
    upsert({"subscriber_key": "a1", "email": "ann@example.com", "name": "Ann"}, T0 + timedelta(1))
    upsert(
        {"subscriber_key": "a1", "email": "ann@example.com", "frequency": "weekly", "team": "x"},
        T0 + timedelta(days=2),
    )
    with Session(engine) as s:
        ann = s.execute(select(Subscriber)).scalar_one()
    assert (ann.name, ann.timezone, ann.frequency) == ("Ann", "Europe/Paris", "paused")
    assert ann.attributes == {"plan": "pro", "team": "x"}
    assert ann.created_at == T0 and ann.updated_at == T0 + timedelta(days=2)
