"""Compile a segment rule tree to SQL: a SELECT of subscriber ids, on SQLite and PostgreSQL.

JSON attributes use SQLAlchemy's JSON accessors (``json_extract`` on SQLite, ``->>`` on
PostgreSQL). A raw ``sql`` rule becomes ``subscriber.id IN (<sql>)``; it is validated as a
single read-only SELECT when parsed and again, for the database that runs it, before it runs;
it is executed with a bound parameter (one statement per execute) in a read-only transaction
with a deadline, as the reader role when there is one and never as a PostgreSQL superuser
unless allowed (see ``newsletter.store.readonly``), so a write fails even if a check were fooled.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Select,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.exc import DBAPIError

from newsletter.models import ItemTopic
from newsletter.rules import (
    Attribute,
    Combine,
    Engaged,
    Interactions,
    Match,
    Not,
    RawSql,
    Rule,
    SegmentDefinition,
    SegmentError,
    Signup,
)
from newsletter.store.readonly import (
    GUARD_PARAMS,
    QueryTimeout,
    SqlLimits,
    UnsafeQuery,
    check_select,
    read_only,
)
from newsletter.tables import (
    event_table,
    human_event,
    interaction_table,
    item_topic_table,
    segment_table,
    subscriber_table,
)

S = subscriber_table.c
I = interaction_table.c  # noqa: E741
E = event_table.c
T = item_topic_table.c
ENGAGEMENT_KINDS = ("open", "click")


def rule_clause(rule: Rule, *, now: datetime) -> ColumnElement[bool]:
    """The WHERE clause (over the subscriber table) that a rule stands for at time `now`."""
    if isinstance(rule, Combine):
        parts = [rule_clause(r, now=now) for r in rule.rules]
        return and_(true(), *parts) if rule.op == "all" else or_(false(), *parts)
    if isinstance(rule, Not):
        return not_(rule_clause(rule.rule, now=now))
    if isinstance(rule, Match):
        return _match(rule)
    if isinstance(rule, Attribute):
        return _attribute(rule)
    if isinstance(rule, Signup):
        return _signup(rule, now)
    if isinstance(rule, Interactions):
        return _interactions(rule, now)
    if isinstance(rule, Engaged):
        since = now - timedelta(days=rule.within_days)
        engaged = select(E.subscriber_id).where(
            E.kind.in_(ENGAGEMENT_KINDS), human_event, E.occurred_at >= since
        )
        return S.id.in_(engaged)
    if isinstance(rule, RawSql):
        raw = text(rule.sql.replace(":", r"\:")).columns(literal_column("id"))
        return S.id.in_(select(literal_column("id")).select_from(raw.subquery("raw_segment")))
    raise TypeError(f"unknown rule {rule!r}")


def _match(rule: Match) -> ColumnElement[bool]:
    column = {"status": S.status, "locale": S.locale, "timezone": S.timezone}[rule.field]
    exact = [v for v in rule.values if not (rule.field == "timezone" and v.endswith("/"))]
    parts: list[ColumnElement[bool]] = [column.in_(exact)] if exact else []
    for value in rule.values:
        if rule.field == "locale":
            parts.append(column.like(f"{value}-%"))
        elif rule.field == "timezone" and value.endswith("/"):
            parts.append(column.like(f"{value}%"))
    return or_(false(), *parts)


def _attribute(rule: Attribute) -> ColumnElement[bool]:
    element = S.attributes[rule.key]
    if rule.op == "exists":
        present = element.as_string().is_not(None)
        return present if rule.value else not_(present)
    values = rule.value if rule.op == "in" else (rule.value,)
    if rule.op in ("gte", "lte"):
        number = element.as_float()
        return number >= rule.value if rule.op == "gte" else number <= rule.value
    matches = or_(false(), *[_json_equals(element, v) for v in values])
    return matches if rule.op != "not_equals" else not_(matches)


def _json_equals(element: Any, value: Any) -> ColumnElement[bool]:
    if isinstance(value, bool):
        return element.as_boolean() == value
    if isinstance(value, int | float):
        return element.as_float() == float(value)
    return element.as_string() == str(value)


def _signup(rule: Signup, now: datetime) -> ColumnElement[bool]:
    parts = []
    if rule.within_days is not None:
        parts.append(S.created_at >= now - timedelta(days=rule.within_days))
    if rule.older_than_days is not None:
        parts.append(S.created_at < now - timedelta(days=rule.older_than_days))
    return and_(true(), *parts)


def _interactions(rule: Interactions, now: datetime) -> ColumnElement[bool]:
    def having(count_clause: Any) -> Select[Any]:
        query = select(I.subscriber_id)
        if rule.topics:
            query = query.join(ItemTopic, T.item_id == I.item_id).where(T.topic.in_(rule.topics))
        if rule.kinds:
            query = query.where(I.kind.in_(rule.kinds))
        if rule.within_days is not None:
            query = query.where(I.occurred_at >= now - timedelta(days=rule.within_days))
        count = func.count(func.distinct(I.id)) if rule.topics else func.count()
        return query.group_by(I.subscriber_id).having(count_clause(count))

    parts: list[ColumnElement[bool]] = []
    if rule.at_least > 0:
        parts.append(S.id.in_(having(lambda c: c >= rule.at_least)))
    if rule.at_most is not None:
        parts.append(S.id.not_in(having(lambda c: c > rule.at_most)))
    return and_(true(), *parts)


def segment_query(definition: SegmentDefinition, *, now: datetime) -> Select[Any]:
    """SELECT subscriber.id for every subscriber the segment selects at `now`, by id."""
    return select(S.id).where(rule_clause(definition.rule, now=now)).order_by(S.id)


def has_raw_sql(rule: Rule) -> bool:
    """Whether the tree holds a raw sql rule (which needs the read-only guard)."""
    return bool(_raw_rules(rule))


def segment_ids(
    engine: Engine,
    *,
    definition: SegmentDefinition,
    now: datetime,
    limits: SqlLimits | None = None,
) -> list[int]:
    """The ids of the subscribers in a segment at `now` (raw sql checked and run read-only)."""
    query = segment_query(definition, now=now)
    raw = has_raw_sql(definition.rule)
    try:
        with read_only(engine, limits=limits, user_sql=raw) as connection:
            if raw:
                _check_raw_sql(connection, definition.rule, definition.source)
                query = query.where(cast(bindparam("nl_guard", 1), Integer) == 1)
            return [int(row[0]) for row in connection.execute(query)]
    except (UnsafeQuery, QueryTimeout) as exc:
        raise SegmentError(f"{definition.source}: the sql rule {exc}") from exc


def _raw_rules(rule: Rule) -> list[RawSql]:
    if isinstance(rule, Combine):
        return [raw for sub in rule.rules for raw in _raw_rules(sub)]
    if isinstance(rule, Not):
        return _raw_rules(rule.rule)
    return [rule] if isinstance(rule, RawSql) else []


def _check_raw_sql(connection: Connection, rule: Rule, source: str) -> None:
    """Each raw sql rule must be a safe SELECT for this database, run, and return one column."""
    for raw in _raw_rules(rule):
        check_select(raw.sql, dialect=connection.dialect.name)
        sql = raw.sql.replace(":", chr(92) + ":")
        probe = text(f"SELECT * FROM ({sql}) AS probe WHERE CAST(:nl_guard AS INTEGER) = 0")
        try:
            keys = list(connection.execute(probe, GUARD_PARAMS).keys())
        except DBAPIError as exc:  # the database names the problem; we name the file
            if "interrupted" in str(exc.orig) or "statement timeout" in str(exc.orig):
                raise
            first = str(exc.orig).splitlines()[0]
            raise SegmentError(f"{source}: the sql rule fails: {first}") from exc
        if len(keys) != 1:
            raise SegmentError(
                f"{source}: the sql rule must return one column of subscriber ids, got {keys}"
            )


def saved_segments(engine: Engine) -> list[tuple[str, str, datetime]]:
    """(name, description, updated_at) of every segment stored in the database, by name."""

    g = segment_table.c
    with engine.connect() as connection:
        rows = connection.execute(select(g.name, g.description, g.updated_at).order_by(g.name))
        return [(str(n), str(d or ""), u) for n, d, u in rows]


def save_segment(
    engine: Engine, *, name: str, definition: str, description: str, now: datetime
) -> None:
    """Insert or replace the segment NAME's YAML (planning reads it before segments/*.yaml)."""
    from sqlalchemy import insert, update

    table = segment_table
    values = {"definition": definition, "description": description[:500], "updated_at": now}
    with engine.begin() as connection:
        found = connection.execute(select(table.c.id).where(table.c.name == name)).scalar()
        if found is None:
            connection.execute(insert(table).values(name=name, **values))
        else:
            connection.execute(update(table).where(table.c.id == found).values(**values))
